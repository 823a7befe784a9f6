"""Helpers of the workflow tests: offline subprocesses and Kedro CLI calls on a project copy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from project_copy import PROJECT, kedro_in_this_process  # noqa: F401 (re-exported)

KEDRO = Path(sys.executable).with_name("kedro")

# Loaded by every Python process started with the guard's folder on PYTHONPATH: a name lookup or
# a connection to anything but this machine is refused and written down.
_GUARD = """
import os
import socket

_LOG = os.environ["MIXAI_NETWORK_LOG"]
_LOCAL = {"", "localhost", "::1", "0.0.0.0"}


def _refuse(what, target):
    with open(_LOG, "a", encoding="utf8") as log:
        log.write(f"{what} {target!r}\\n")
    raise OSError(f"no network in the tests: {what} {target!r}")


def _is_local(host):
    return not isinstance(host, str) or host in _LOCAL or host.startswith("127.")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        _refuse("lookup", host)
    return _getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse("connect", address)
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
"""


def offline_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The test process's environment for a child that may not use the network.

    Attempts are logged to ``folder / "network.log"`` (see :func:`network_attempts`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_GUARD)
    environment = {key: value for key, value in os.environ.items() if key != "MIXAI_DB_URL"}
    path = [str(folder), environment.get("PYTHONPATH", "")]
    environment.update(
        PYTHONPATH=os.pathsep.join(part for part in path if part),
        MIXAI_NETWORK_LOG=str(folder / "network.log"),
        KEDRO_DISABLE_TELEMETRY="1",
        MPLBACKEND="Agg",
        **extra,
    )
    return environment


def network_attempts(folder: Path) -> list[str]:
    """What the guarded children tried to reach (empty: nothing)."""
    log = folder / "network.log"
    return log.read_text().splitlines() if log.is_file() else []


def run_offline(
    command: list[str], cwd: Path, guard: Path, timeout: float = 600, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` without network; fail with its output if it fails."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=offline_environment(guard, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def cli_params(params: Mapping[str, Any], prefix: str = "") -> str:
    """Nested runtime parameters as ``kedro run --params`` text: ``a.b=1,a.c=x``."""
    items = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.append(cli_params(value, f"{name}."))
        else:
            items.append(f"{name}={value}")
    return ",".join(items)
