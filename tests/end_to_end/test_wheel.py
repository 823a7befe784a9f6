"""The slim wheel, installed alone in a clean venv, serves the tiny demo's bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixai_inference.tasks import PRESETS
from slim_boundary import forbidden_distributions

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def slim_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with nothing but the built wheel and its dependencies."""
    root = tmp_path_factory.mktemp("slim")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(root / "dist"),
            str(PROJECT / "src" / "mixai_inference"),
        ],
        check=True,
        capture_output=True,
    )
    wheels = list((root / "dist").glob("mixai_inference-*-py3-none-any.whl"))
    assert len(wheels) == 1
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    subprocess.run(
        [str(root / "venv/bin/python"), "-m", "pip", "install", "--quiet", str(wheels[0])],
        check=True,
        capture_output=True,
    )
    return root / "venv"


def installed(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {package["name"].lower() for package in json.loads(listing.stdout)}


def infer(venv: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [str(venv / "bin/mixai-infer"), *args, "--json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ENABLE_CPU_ML": "true"},
    )
    return dict(json.loads(result.stdout))


@pytest.mark.slow
def test_the_wheel_alone_serves_the_tiny_bundle(slim_venv: Path, tiny_project: Path) -> None:
    packages = installed(slim_venv)
    assert {"mixai-inference", "numpy", "onnxruntime", "soundfile", "soxr"} <= packages
    heavy = forbidden_distributions()
    assert {"torch", "kedro", "pandas", "scikit-learn", "onnx"} <= heavy  # the list is read
    assert not packages & heavy, f"heavy packages in the slim venv: {packages & heavy}"

    bundle = tiny_project / "data/06_models/bundle"
    job = next(path for path in sorted((tiny_project / "data/01_raw/audio/jobs").iterdir()))
    answer = infer(
        slim_venv, "predict", str(job / "mix.flac"), "--bundle", str(bundle), "--user-id", "someone"
    )
    assert -20.0 <= float(answer["target_lufs"]) <= -6.0  # type: ignore[arg-type]
    assert answer["preset"] in PRESETS
    served = json.dumps(answer)
    assert '"ml"' in served, f"no task was served by a model: {served}"

    aligned = infer(
        slim_venv, "align", str(job / "vocal.flac"), str(job / "inst.flac"), "--bundle", str(bundle)
    )
    assert "offset_ms" in json.dumps(aligned)
