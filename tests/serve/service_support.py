"""``mixai-serve`` in a subprocess, a keep-alive JSON client, and what they serve."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bundle_factory import build_bundle
from sqlalchemy import create_engine

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS
from mixai_ml.db.migrations import apply_migrations

INPUT_DIMS = {
    MASTER_REG: len(FEATURE_NAMES),
    PRESET_CLS: len(FEATURE_NAMES),
    ALIGN_CONF: len(ALIGNMENT_FEATURE_NAMES),
}
FEATURES = [0.0] * len(FEATURE_NAMES)
"""A valid request's features (the models are affine: their answer is their bias)."""


def serve_bundle(
    path: Path, versions: Mapping[str, list[str]] | None = None, **kwargs: Any
) -> Path:
    """A bundle for the real feature width: master_reg v0 (active) and v1 (candidate);
    v ``k`` answers ``target_lufs = -19.5 + 0.5 k``."""
    versions = versions or {MASTER_REG: ["v0", "v1"], PRESET_CLS: ["p0"], ALIGN_CONF: ["a0"]}
    return build_bundle(
        path, versions, schema=FEATURE_SCHEMA_VERSION, input_dims=INPUT_DIMS, **kwargs
    )


def migrated(url: str) -> str:
    engine = create_engine(url)
    apply_migrations(engine)
    engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive HTTP connection; ``call`` returns ``(status, JSON body)``."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if self.token is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=data, headers=sent)
                response = self._connection.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()  # the server closed an idle keep-alive connection
                if attempt == 2:
                    raise
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload.decode(errors="replace")
        return response.status, parsed

    def predict(self, user_id: str | None = None, **extra: Any) -> tuple[int, Any]:
        return self.call("POST", "/v1/predict", {"features": FEATURES, "user_id": user_id, **extra})

    def close(self) -> None:
        self._connection.close()


class Service:
    """``mixai-serve`` as production runs it, in a subprocess on a free loopback port."""

    def __init__(
        self,
        bundle: Path,
        db_url: str,
        folder: Path,
        env: Mapping[str, str],
        command: list[str] | None = None,
    ) -> None:
        self.command = command or [sys.executable, "-m", "mixai_inference.serve.cli"]
        self.bundle = bundle
        self.folder = folder
        self.port = free_port()
        self.journal_dir = folder / "journal"
        self.log = folder / "service.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ENABLE_", "MIXAI_"))
        }
        self.env.update(
            MIXAI_DB_URL=db_url,
            MIXAI_JOURNAL_DIR=str(self.journal_dir),
            MIXAI_CONTROL_REFRESH_S="1",
            MIXAI_BUNDLE_POLL_S="0.2",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [*self.command, "--bundle", str(self.bundle), "--port", str(self.port), *args]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mixai-serve exited:\n{self.log.read_text()}")
            try:
                status, _ = Client(self.port).call("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mixai-serve did not start:\n{self.log.read_text()}")

    def client(self) -> Client:
        return Client(self.port, self.env.get("MIXAI_SERVICE_TOKEN"))

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> bool:
        """Stop as a deployment would (SIGTERM: queued rows are written); whether it stopped
        cleanly (uvicorn ends a graceful shutdown by re-raising the signal it caught)."""
        if self.process is None:
            return True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return False
        return self.process.returncode in (0, -signal.SIGTERM)

    def wait_until(self, check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{what} not met within {timeout} s; log:\n{self.log.read_text()}")
