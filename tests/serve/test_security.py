"""Trying to break ``mixai-serve``: tokens, paths, sizes, bad values (CONTRACTS §9). Every bad
request is a 4xx that says what to send, and the service keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import FEATURES, Client, Service, migrated, serve_bundle

from mixai_inference.serve.settings import Settings

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the module: every test also checks that it keeps serving."""
    tmp_path = tmp_path_factory.mktemp("security")
    root = tmp_path / "audio"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "secret.wav").write_bytes(b"RIFF not for you")
    (root / "inside" / "link.wav").symlink_to(tmp_path / "secret.wav")
    (root / "noise.wav").write_bytes(os.urandom(4096))
    env = {
        "MIXAI_SERVICE_TOKEN": TOKEN,
        "MIXAI_AUDIO_ROOT": str(root),
        "MIXAI_MAX_BODY_BYTES": "65536",
        "MIXAI_MAX_UPLOAD_BYTES": "200000",
    }
    database = migrated(f"sqlite:///{tmp_path / 'mixai.db'}")
    running = Service(serve_bundle(tmp_path / "bundle"), database, tmp_path / "service", env)
    running.start()
    try:
        yield running
    finally:
        assert running.stop()


def upload_of(name: str, data: bytes, boundary: str) -> bytes:
    """A multipart body with ``data`` as the ``audio`` file ``name``."""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{name}"'
    return f"{head}\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"bearer{TOKEN}"],
)
def test_v1_needs_the_token(service: Service, header: str | None) -> None:
    client = Client(service.port)
    headers = {} if header is None else {"Authorization": header}
    status, answer = client.call("POST", "/v1/predict", {"features": FEATURES}, headers=headers)
    assert status == 401
    assert "Bearer" in answer["error"]
    assert Client(service.port).call("GET", "/healthz")[0] == 200  # probes need none


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"audio_path": "../secret.wav"}, 400, "outside the audio root"),
        ({"audio_path": "inside/../../secret.wav"}, 400, "outside the audio root"),
        ({"audio_path": "/etc/passwd"}, 400, "absolute"),
        ({"audio_path": "inside/link.wav"}, 400, "outside the audio root"),
        ({"audio_path": "missing.wav"}, 404, "no audio file"),
        ({"audio_path": "bad\u0000name.wav"}, 400, "relative to the audio root"),
        ({"audio_path": 42}, 400, "relative to the audio root"),
        ({"audio_path": "noise.wav"}, 400, "accepted"),
        ({"vocal_path": "noise.wav"}, 400, "instrumental"),
    ],
)
def test_paths_that_leave_the_root_or_hold_no_audio_are_refused(
    service: Service, body: dict[str, object], status: int, message: str
) -> None:
    route = "/v1/align" if "vocal_path" in body else "/v1/predict"
    got, answer = service.client().call("POST", route, body)
    assert (got, message in answer["error"]) == (status, True), answer


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"features": [NaN' + b", 0" * 174 + b"]}", "finite numbers"),
        (b'{"features": [Infinity]}', "finite numbers"),
        (b'{"features": [1, 2, 3]}', "must have 175 numbers, got 3"),
        (b'{"features": "abc"}', "must be a list of 175 numbers"),
        (b'{"features": [' + b'"x", ' * 174 + b'"x"]}', "features[0] must be a finite number"),
        (b'{"features": [true' + b", 0" * 174 + b"]}", "features[0] must be a finite number"),
        (b'{"features": [1e400' + b", 0" * 174 + b"]}", "features[0] must be a finite number"),
        (b'{"features": [1' + b"0" * 400 + b", 0" * 174 + b"]}", "an integer beyond float64"),
        (b'{"features": [1' + b"0" * 5000 + b"]}", "not valid JSON"),  # Python's digit limit
        (b'{"features": ' + b"[" * 60_000, "not valid JSON"),  # deeper than the parser goes
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "send a JSON object"),
        (b"{}", "send 'audio_path'"),
        (b'{"features": [' + b"0, " * 174 + b'0], "user_id": 5}', "user_id must be a string"),
        (b'{"features": [' + b"0, " * 174 + b'0], "user_id": "' + b"u" * 65 + b'"}', "1 to 64"),
    ],
)
def test_bad_json_is_a_400_that_says_what_to_send(
    service: Service, raw: bytes, message: str
) -> None:
    client = service.client()
    status, answer = client.call(
        "POST", "/v1/predict", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 400, answer
    assert message in answer["error"]
    assert client.predict("still-serving")[0] == 200


def test_oversize_bodies_and_uploads_are_refused(service: Service) -> None:
    client = service.client()
    big = b'{"features": [' + b"0.0, " * 20_000 + b"0]}"
    status, answer = client.call(
        "POST", "/v1/predict", raw=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert "65536" in answer["error"]
    boundary = "b"
    upload = upload_of("a.wav", b"\0" * 300_000, boundary)
    status, answer = client.call(
        "POST", "/v1/predict", raw=upload,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 413
    assert "200000" in answer["error"]
    status, answer = client.call(
        "POST",
        "/v1/predict",
        raw=b"x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    assert client.predict()[0] == 200


def test_an_undecodable_upload_is_a_400(service: Service) -> None:
    boundary = "b"
    upload = upload_of("a.mp3", os.urandom(20_000), boundary)
    client = service.client()
    status, answer = client.call(
        "POST", "/v1/predict", raw=upload,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 400, answer
    assert "accepted" in answer["error"]
    assert client.predict()[0] == 200


def test_a_public_address_without_a_token_is_refused(bundle: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIXAI_SERVICE_TOKEN"}
    for host in ("0.0.0.0", "192.0.2.1", "example.org"):
        done = subprocess.run(
            [sys.executable, "-m", "mixai_inference.serve.cli", "--bundle", str(bundle),
             "--host", host],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2
        assert "MIXAI_SERVICE_TOKEN" in done.stderr


def test_settings_take_their_defaults_and_refuse_bad_numbers_saying_what_to_set() -> None:
    default = Settings.from_env("bundle", environ={})
    assert (default.host, default.port, default.queue_max) == ("127.0.0.1", 8080, 20_000)
    assert Settings.from_env("b", port=9000, environ={"MIXAI_QUEUE_MAX": "5"}).queue_max == 5
    for raw, message in (
        ("many", "MIXAI_QUEUE_MAX='many' is not a whole number; set it to a whole number above 0"),
        ("0", "MIXAI_QUEUE_MAX must be positive, got 0; unset it for the default 20000"),
    ):
        with pytest.raises(ValueError, match=message):
            Settings.from_env("bundle", environ={"MIXAI_QUEUE_MAX": raw})
