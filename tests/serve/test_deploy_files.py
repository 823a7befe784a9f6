"""The container recipe and the systemd unit run the service as documented (neither Docker nor
systemd runs here: their commands are checked against the real command line)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from mixai_inference.serve.cli import _parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_dockerfile_installs_the_extra_and_runs_mixai_serve() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"pip install .*\[serve\]", text)
    command = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert command[0] == "mixai-serve"
    args = _parser().parse_args(command[1:])
    assert (args.host, args.port, args.bundle) == ("0.0.0.0", 8080, "/srv/bundle")
    assert "EXPOSE 8080" in text
    assert "MIXAI_JOURNAL_DIR" in text


def test_the_systemd_unit_runs_mixai_serve_and_reloads_with_sighup() -> None:
    unit = dict(
        line.split("=", 1)
        for line in (DEPLOY / "mixai-serve.service").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    command = shlex.split(unit["ExecStart"])
    assert command[0].endswith("/mixai-serve")
    args = _parser().parse_args(command[1:])
    assert args.host == "127.0.0.1"
    assert args.bundle == "/srv/mixai/bundle"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["KillSignal"] == "SIGTERM"
    assert "MIXAI_JOURNAL_DIR" in unit["Environment"]
