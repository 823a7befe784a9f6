"""The web engine's own tests under Node (``npm test``) and the golden vectors they read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mixai_ml.edge.web_vectors import dump_vectors, engine_vectors

WEB = Path(__file__).resolve().parents[2] / "web"
VECTORS = WEB / "tests" / "fixtures" / "engine_vectors.json"


def test_the_committed_golden_vectors_are_what_python_computes() -> None:
    assert VECTORS.read_text(encoding="utf-8") == dump_vectors(engine_vectors()), (
        "web/tests/fixtures/engine_vectors.json is out of date: run "
        "python -m mixai_ml.edge.web_vectors web/tests/fixtures/engine_vectors.json"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("npm") is None and os.environ.get("CI", "").lower() != "true",
    reason="npm is not installed (.ci/run installs Node and npm)",
)
def test_npm_test_passes() -> None:
    if not (WEB / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    result = subprocess.run(["npm", "test"], cwd=WEB, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
