"""The slim package imports only its runtime dependencies (CONTRACTS §7)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mixai_inference

HEAVY = {"scipy", "librosa", "pandas", "torch", "sklearn", "kedro", "numba", "joblib"}
# The CI hook's list: also no pickle in the package's own code (numpy itself loads the module).
FORBIDDEN_IN_SOURCE = HEAVY | {"pickle"}


def test_importing_the_package_loads_no_heavy_module() -> None:
    code = (
        "import json, sys, mixai_inference; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_no_source_file_imports_a_heavy_module() -> None:
    """The CI hook's rule (a line starting with such an import, docstrings included)."""
    modules = "|".join(sorted(FORBIDDEN_IN_SOURCE))
    pattern = re.compile(rf"^\s*(import|from) ({modules})\b", re.MULTILINE)
    package = Path(mixai_inference.__file__).parent
    offenders = [
        path.name for path in package.rglob("*.py") if pattern.search(path.read_text("utf-8"))
    ]
    assert not offenders
