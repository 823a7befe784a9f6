"""``mixai-serve`` started as production runs it, called over loopback (CONTRACTS §9)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from service_support import Service, serve_bundle
from sqlalchemy import create_engine, text

from mixai_inference.bundle import MANIFEST_NAME
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = [tuple(row) for row in connection.execute(text(sql))]
    engine.dispose()
    return found


def execute(url: str, sql: str, **params: object) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(sql), params)
    engine.dispose()


def set_flag(url: str, flag: str, enabled: bool) -> None:
    execute(url, "DELETE FROM ml_feature_flags WHERE flag = :flag", flag=flag)
    execute(
        url,
        "INSERT INTO ml_feature_flags (flag, enabled, updated_at, updated_by) "
        "VALUES (:flag, :enabled, CURRENT_TIMESTAMP, 'test')",
        flag=flag,
        enabled=enabled,
    )


def tone(path: Path, seconds: float = 3.0, sr: int = 22_050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    sf.write(path, np.stack([audio, audio], axis=1).astype(np.float32), sr)
    return path


def test_predict_answers_the_cli_json_with_a_request_id_and_records_it(
    bundle: Path, sqlite_db: str, start_service: Callable[..., Service]
) -> None:
    service = start_service(bundle, sqlite_db)
    client = service.client()
    status, answer = client.predict("user-1", job_id="job-1")
    assert status == 200, answer
    assert answer[MASTER_REG]["source"] == "ml"
    assert answer[MASTER_REG]["model_version"] == "v0"
    assert answer["target_lufs"] == -19.5
    assert answer["preset"]
    assert set(answer[PRESET_CLS]) == {
        "source",
        "model_version",
        "variant",
        "experiment_id",
        "reason",
        "ood_score",
        "ood",
        "personalized",
    }
    assert answer[PRESET_CLS]["personalized"] is False  # the bundle ships no user adapters
    assert len(answer["request_id"]) == 32
    status, again = client.call(
        "POST", "/v1/predict", {"features": [0.0] * 175}, headers={"X-Request-ID": "mine-1"}
    )
    assert again["request_id"] == "mine-1"
    service.wait_until(
        lambda: len(rows(sqlite_db, "SELECT * FROM model_metrics")) == 4, what="4 rows"
    )
    stored = rows(
        sqlite_db,
        "SELECT task, request_id, user_id, job_id, source FROM model_metrics "
        "WHERE request_id = :r".replace(":r", f"'{answer['request_id']}'"),
    )
    assert sorted(stored) == [
        (MASTER_REG, answer["request_id"], "user-1", "job-1", "ml"),
        (PRESET_CLS, answer["request_id"], "user-1", "job-1", "ml"),
    ]
    status, text_metrics = client.call("GET", "/metrics")
    assert status == 200
    assert 'mixai_requests_total{route="/v1/predict",status="200"} 2.0' in text_metrics
    assert 'mixai_answers_total{reason="",source="ml",task="master_reg"} 2.0' in text_metrics
    status, ready = client.call("GET", "/readyz")
    assert status == 200, ready
    assert ready["ready"]


def test_uploads_and_paths_under_the_audio_root_are_analysed(
    bundle: Path, sqlite_db: str, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    tone(root / "mix.wav")
    shutil.copy(root / "mix.wav", root / "vocal.wav")
    tone(root / "inst.wav", sr=44_100)
    service = start_service(bundle, sqlite_db, MIXAI_AUDIO_ROOT=str(root))
    client = service.client()
    status, by_path = client.call("POST", "/v1/predict", {"audio_path": "mix.wav", "user_id": "u"})
    assert status == 200, by_path
    boundary = "mixai-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="user_id"\r\n\r\nu\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="mix.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + (root / "mix.wav").read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, uploaded = client.call(
        "POST",
        "/v1/predict",
        raw=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200, uploaded
    assert uploaded["target_lufs"] == by_path["target_lufs"]
    assert uploaded["preset_scores"] == by_path["preset_scores"]
    status, aligned = client.call(
        "POST", "/v1/align", {"vocal_path": "vocal.wav", "instrumental_path": "inst.wav"}
    )
    assert status == 200, aligned
    assert abs(aligned["offset_ms"]) < 50
    assert aligned[ALIGN_CONF]["source"] == "ml"
    # the CLI answers the same JSON (without the request id)
    cli = subprocess.run(
        [sys.executable, "-m", "mixai_inference.cli", "predict", str(root / "mix.wav"),
         "--bundle", str(bundle), "--user-id", "u", "--json"],
        capture_output=True, text=True, check=True, env={**service.env, "ENABLE_CPU_ML": "true"},
    )  # fmt: skip
    expected = json.loads(cli.stdout)
    assert {k: v for k, v in by_path.items() if k != "request_id"} == expected


def test_database_control_switches_answers_without_a_restart(
    bundle: Path, sqlite_db: str, start_service: Callable[..., Service]
) -> None:
    service = start_service(bundle, sqlite_db)
    client = service.client()
    assert client.predict("u1")[1][MASTER_REG]["model_version"] == "v0"
    # promote v1 in the registry (the admin console or mixai-registry would)
    for version, status, pct in (("v0", "retired", 0.0), ("v1", "active", 100.0)):
        execute(
            sqlite_db,
            "INSERT INTO model_registry (model_id, task, version, uri, sha256, "
            "feature_schema_version, status, rollout_pct, created_at, promoted_at) VALUES "
            "(:id, 'master_reg', :v, 'x', 'x', '1', :s, :p, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            id=f"master_reg:{version}",
            v=version,
            s=status,
            p=pct,
        )
    service.wait_until(
        lambda: client.predict("u1")[1][MASTER_REG]["model_version"] == "v1", what="promotion"
    )
    assert client.predict("u1")[1]["target_lufs"] == -19.0
    # an experiment: everyone in, half to the rules
    execute(
        sqlite_db,
        "INSERT INTO ab_experiments (experiment_id, task, variants, weights, coverage, status) "
        "VALUES ('exp-1', 'master_reg', :v, :w, 1.0, 'running')",
        v=json.dumps({"control": "active", "treatment": "rules"}),
        w=json.dumps({"control": 1, "treatment": 1}),
    )
    answers = service.wait_until(
        lambda: (
            [a[MASTER_REG] for a in (client.predict(f"user-{i}")[1] for i in range(40))]
            if client.predict("user-0")[1][MASTER_REG]["experiment_id"]
            else None
        ),
        what="experiment",
    )
    variants = {a["variant"] for a in answers}
    assert variants == {"control", "treatment"}
    assert all(a["reason"] == "variant_rules" for a in answers if a["variant"] == "treatment")
    service.wait_until(
        lambda: rows(sqlite_db, "SELECT COUNT(*) FROM ab_test_assignments")[0][0] == 40,
        what="one assignment per user",
    )
    # the master switch off in the database
    set_flag(sqlite_db, "enable_cpu_ml", False)
    service.wait_until(
        lambda: client.predict("u1")[1][MASTER_REG]["reason"] == "disabled", what="flag off"
    )
    # the operator's environment beats the database
    service.stop()
    override = start_service(bundle, sqlite_db, ENABLE_CPU_ML="true")
    served = [override.client().predict(f"user-{i}")[1][MASTER_REG] for i in range(10)]
    assert not any(a["reason"] == "disabled" for a in served)
    assert any(a["source"] == "ml" for a in served)


def test_a_new_bundle_is_swapped_in_and_a_broken_one_refused(
    bundle: Path, sqlite_db: str, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = start_service(bundle, sqlite_db)
    client = service.client()
    assert client.predict()[1]["target_lufs"] == -19.5
    serve_bundle(
        bundle,
        {MASTER_REG: ["w0", "w1", "w2"], PRESET_CLS: ["p0"], ALIGN_CONF: ["a0"]},
        active={MASTER_REG: "w2"},
    )
    service.wait_until(lambda: client.predict()[1]["target_lufs"] == -18.5, what="new bundle")

    # a bundle whose model file does not match its manifest is refused
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / manifest["tasks"][MASTER_REG]["models"]["w2"]["file"]).write_bytes(b"not onnx")
    (broken / MANIFEST_NAME).write_text(
        json.dumps({**manifest, "created_at": "2030-01-01T00:00:00Z"})
    )
    swapped = bundle.with_name("old")
    bundle.rename(swapped)
    broken.rename(bundle)
    service.wait_until(
        lambda: (
            'mixai_bundle_reloads_total{outcome="refused"} 1.0' in client.call("GET", "/metrics")[1]
        ),
        what="refusal counted",
    )
    assert client.predict()[1]["target_lufs"] == -18.5  # the old bundle keeps serving
    assert client.predict()[1][MASTER_REG]["source"] == "ml"

    # the good bundle back; SIGHUP re-reads even an unchanged one
    shutil.rmtree(bundle)
    swapped.rename(bundle)
    for reloads in ("2.0", "3.0"):
        service.wait_until(
            lambda n=reloads: (
                f'mixai_bundle_reloads_total{{outcome="ok"}} {n}'
                in client.call("GET", "/metrics")[1]
            ),
            what=f"{reloads} reloads",
        )
        service.signal(signal.SIGHUP)
    assert client.predict()[1]["target_lufs"] == -18.5


def test_readiness_says_why_not(
    bundle: Path, sqlite_url: str, start_service: Callable[..., Service]
) -> None:
    service = start_service(bundle, sqlite_url)  # a database nobody migrated
    client = service.client()
    status, ready = client.call("GET", "/readyz")
    assert status == 503
    assert any("mixai-db upgrade" in reason for reason in ready["reasons"]), ready
    assert client.predict()[0] == 200  # it answers all the same (rows go to the journal)
    service.wait_until(lambda: list(service.journal_dir.glob("*.jsonl")), what="a journal")
