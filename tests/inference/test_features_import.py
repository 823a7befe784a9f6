"""The slim package imports nothing heavy (docs/data_contracts.md §8), at run time as well as
in its source (the source is checked by ruff: ``src/mixai_inference/pyproject.toml``)."""

from __future__ import annotations

import json
import subprocess
import sys

from slim_boundary import FORBIDDEN_MODULES, SERVE_EXTRA_MODULES


def test_the_forbidden_list_names_the_heavy_packages() -> None:
    assert {"mixai_ml", "torch", "kedro", "pandas", "scipy", "librosa", "sklearn"} <= (
        FORBIDDEN_MODULES
    )
    assert {"numpy", "onnxruntime", "soundfile", "soxr"}.isdisjoint(FORBIDDEN_MODULES)


def loaded_by(modules: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after importing ``modules``."""
    code = (
        f"import json, sys, {modules}; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    return set(json.loads(result.stdout))


def test_importing_every_module_loads_no_forbidden_one() -> None:
    """The package, the predictor, the command line and onnxruntime itself (which the
    predictor imports on first use) load none of the forbidden modules, nor the serve extra."""
    loaded = loaded_by(
        "onnxruntime, mixai_inference, mixai_inference.cli, mixai_inference.predictor, "
        "mixai_inference.control"
    )
    # numpy loads pickle itself: at run time only the forbidden packages count
    packages = (FORBIDDEN_MODULES | SERVE_EXTRA_MODULES) - sys.stdlib_module_names
    assert not loaded & packages, sorted(loaded & packages)


def test_the_service_loads_its_extra_and_nothing_forbidden() -> None:
    """``mixai_inference.serve`` may import the serve extra (ruff lets it), nothing else
    forbidden: checked here at run time on every module of the subpackage."""
    from importlib.resources import files

    serve = files("mixai_inference") / "serve"
    modules = sorted(
        f"mixai_inference.serve.{entry.name[:-3]}"
        for entry in serve.iterdir()
        if entry.name.endswith(".py") and entry.name != "__init__.py"
    )
    assert {"mixai_inference.serve.app", "mixai_inference.serve.writer"} <= set(modules)
    loaded = loaded_by(", ".join(modules))
    packages = FORBIDDEN_MODULES - sys.stdlib_module_names
    assert not loaded & packages, sorted(loaded & packages)
    assert {"starlette", "sqlalchemy", "prometheus_client"} <= loaded
