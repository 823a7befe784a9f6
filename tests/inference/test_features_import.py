"""The slim package imports nothing heavy (docs/data_contracts.md §8), at run time as well as
in its source (the source is checked by ruff: ``src/mixai_inference/pyproject.toml``)."""

from __future__ import annotations

import json
import subprocess
import sys

from slim_boundary import FORBIDDEN_MODULES


def test_the_forbidden_list_names_the_heavy_packages() -> None:
    assert {"mixai_ml", "torch", "kedro", "pandas", "scipy", "librosa", "sklearn"} <= (
        FORBIDDEN_MODULES
    )
    assert {"numpy", "onnxruntime", "soundfile", "soxr"}.isdisjoint(FORBIDDEN_MODULES)


def test_importing_every_module_loads_no_forbidden_one() -> None:
    """The package, the predictor, the command line and onnxruntime itself (which the
    predictor imports on first use) load none of the forbidden modules."""
    code = (
        "import json, sys, onnxruntime, mixai_inference, mixai_inference.cli, "
        "mixai_inference.predictor; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    # numpy loads pickle itself: at run time only the forbidden packages count
    packages = FORBIDDEN_MODULES - sys.stdlib_module_names
    assert not loaded & packages, sorted(loaded & packages)
