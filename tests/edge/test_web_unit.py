"""The web engine's own tests under Node (``npm test``) and the golden vectors they read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mixai_ml.edge.web_vectors import dump_vectors, engine_vectors

WEB = Path(__file__).resolve().parents[2] / "web"
VECTORS = WEB / "tests" / "fixtures" / "engine_vectors.json"


def _differences(committed: Any, computed: Any, path: str = "") -> Iterator[str]:
    """Where two vector files differ: floats beyond the web tests' tolerance (1e-12, relative
    above 1: numpy's SIMD kernels differ in the last bit between CPUs), anything else at all."""
    if isinstance(committed, dict) and isinstance(computed, dict):
        if committed.keys() != computed.keys():
            yield f"{path}: keys {sorted(committed)} vs {sorted(computed)}"
        for key in committed.keys() & computed.keys():
            yield from _differences(committed[key], computed[key], f"{path}/{key}")
    elif isinstance(committed, list) and isinstance(computed, list):
        if len(committed) != len(computed):
            yield f"{path}: {len(committed)} items vs {len(computed)}"
        for index, (a, b) in enumerate(zip(committed, computed, strict=False)):
            yield from _differences(a, b, f"{path}[{index}]")
    elif isinstance(committed, float) and isinstance(computed, float):
        if abs(committed - computed) > 1e-12 * max(1.0, abs(committed)):
            yield f"{path}: {committed!r} vs {computed!r}"
    elif committed != computed or type(committed) is not type(computed):
        yield f"{path}: {committed!r} vs {computed!r}"


def test_the_committed_golden_vectors_are_what_python_computes() -> None:
    committed = json.loads(VECTORS.read_text(encoding="utf-8"))
    computed = json.loads(dump_vectors(engine_vectors()))
    differences = list(_differences(committed, computed))
    assert not differences, (
        "web/tests/fixtures/engine_vectors.json is out of date: run "
        "python -m mixai_ml.edge.web_vectors web/tests/fixtures/engine_vectors.json\n"
        + "\n".join(differences[:10])
    )


def test_the_vectors_comparison_sees_a_changed_value_but_not_the_last_bit() -> None:
    vectors = {"rules": [{"scores": [0.25, 1e-7], "reason": None}], "n": 3}
    last_bit = {"rules": [{"scores": [0.25, 1e-7 * (1 + 2e-16)], "reason": None}], "n": 3}
    changed = {"rules": [{"scores": [0.25, 1.1e-7], "reason": "x"}], "n": 3.0}
    assert not list(_differences(vectors, last_bit))
    assert len(list(_differences(vectors, changed))) == 3  # the score, the reason, the type


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
