"""The slim wheel, installed alone in a clean venv, serves the tiny demo's bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixai_inference.tasks import PRESETS, task_names
from slim_boundary import canonical, forbidden_distributions, serve_extra_distributions

PROJECT = Path(__file__).resolve().parents[2]


SERVE_VENV_LIMIT_MB = 230.0


def make_venv(root: Path, extra: str = "") -> Path:
    """A fresh venv with nothing but the built wheel (with ``extra``) and its dependencies."""
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
        [str(root / "venv/bin/python"), "-m", "pip", "install", "--quiet", f"{wheels[0]}{extra}"],
        check=True,
        capture_output=True,
    )
    return root / "venv"


@pytest.fixture(scope="session")
def slim_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("slim"))


@pytest.fixture(scope="session")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("serve"), "[serve]")


VENV_BOOTSTRAP = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence")
"""What ``python -m venv`` installs by itself, not the wheel's dependencies."""


def site_packages_mb(venv: Path) -> float:
    """The size of what the wheel installed in the venv (without the venv's own pip)."""
    (site,) = (venv / "lib").glob("python3*/site-packages")
    files = [
        f
        for f in site.rglob("*")
        if f.is_file()
        and not f.is_symlink()
        and not f.relative_to(site).parts[0].startswith(VENV_BOOTSTRAP)
    ]
    return sum(f.stat().st_size for f in files) / 1e6


def installed(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {canonical(package["name"]) for package in json.loads(listing.stdout)}


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
    assert not packages & serve_extra_distributions(), "the serve extra came without asking"

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


@pytest.mark.slow
def test_mixai_serve_from_the_wheel_serves_the_demo_on_its_database(
    serve_venv: Path, tiny_project: Path, tmp_path: Path
) -> None:
    """The issue's "done when": the wheel with its extra, no heavy package, at most 230 MB,
    serves the demo bundle on the demo database (its flags and experiments), and a flag
    switched in the database changes the answers without a restart."""
    packages = installed(serve_venv)
    assert {
        "starlette",
        "uvicorn",
        "orjson",
        "prometheus-client",
        "sqlalchemy",
        "psycopg",
    } <= packages
    assert not packages & forbidden_distributions()
    size = site_packages_mb(serve_venv)
    assert size <= SERVE_VENV_LIMIT_MB, f"{size:.0f} MB"

    sys.path[:0] = [str(PROJECT / "tests" / folder) for folder in ("serve", "inference")]
    from service_support import FEATURES, Service
    from sqlalchemy import create_engine, text

    database = f"sqlite:///{tiny_project / 'data/mixai.db'}"
    bundle = tiny_project / "data/06_models/bundle"
    service = Service(bundle, database, tmp_path, {}, [str(serve_venv / "bin/mixai-serve")])
    service.start()
    try:
        client = service.client()
        service.wait_until(lambda: client.call("GET", "/readyz")[0] == 200, 60, "ready")
        experiments = set()
        for n in range(300):
            status, answer = client.predict(f"demo-user-{n}")
            assert status == 200, answer
            experiments |= {answer[task]["experiment_id"] for task in task_names("mix")}
        assert {"master-reg-candidate", "preset-ml-vs-rules"} & experiments, experiments
        assert answer["master_reg"]["reason"] != "disabled"
        engine = create_engine(database)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE ml_feature_flags SET enabled = false WHERE flag = 'enable_cpu_ml'")
            )
        engine.dispose()
        service.wait_until(
            lambda: (
                client.call("POST", "/v1/predict", {"features": FEATURES})[1]["master_reg"][
                    "reason"
                ]
                == "disabled"
            ),
            what="the flag obeyed",
        )
    finally:
        service.stop()
        engine = create_engine(database)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE ml_feature_flags SET enabled = true WHERE flag = 'enable_cpu_ml'")
            )
        engine.dispose()
