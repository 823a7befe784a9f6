"""A tiny copy of the project, run through every pipeline once per test session.

The copy has its own ``conf/`` and ``data/`` (and so its own SQLite database), so
the tests never touch the developer's demo data.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mixai_ml.db.engine import dispose_engines
from mixai_ml.paths import project_root, set_project_root

PROJECT = Path(__file__).resolve().parents[2]
LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)
FAST_MODEL = {"model": {"fit": {"max_epochs": 60, "patience": 10}}}
TINY = {
    # the tiny world, with enough users that every split of every task has some
    "demo_data": {
        "size": "tiny",
        "n_workers": 2,
        "sizes": {
            "tiny": {"n_users": 40, "n_jobs": 100, "clip_seconds": [3.2, 3.6], "ab_users": 400}
        },
    },
    "features": {"n_workers": 2},
    # 40 jobs of 16 users: larger held-out shares so that every split has users
    "training": {"min_samples": 10, "split": {"test_fraction": 0.3, "validation_fraction": 0.25}},
    "master_reg": FAST_MODEL,
    "preset_cls": FAST_MODEL,
    "align_conf": FAST_MODEL,
    # A handful of test users decides nothing: promote whatever trained, so the bundle ships
    # models and the wheel can be tried on them.
    "evaluation": {
        "bootstrap": {"n_resamples": 50},
        "audio": {"max_jobs": 3},
        "promotion": {
            "master_reg": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0},
            "preset_cls": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0},
            "align_conf": {"min_gain_vs_rules": -10.0, "min_gain_vs_active": -10.0, "max_ece": 1.0},
        },
    },
    "export": {"flags": {"enable_cpu_ml": True}},
}


def copy_project(destination: Path) -> Path:
    """The project's configuration in ``destination`` with empty data layers."""
    shutil.copy(PROJECT / "pyproject.toml", destination)
    shutil.copy(PROJECT / ".telemetry", destination)
    shutil.copytree(PROJECT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    (destination / "src").mkdir()  # Kedro checks it exists; the package is installed
    for layer in LAYERS:
        (destination / "data" / layer).mkdir(parents=True)
    return destination


def run_pipelines(
    project: Path, names: list[str], params: dict[str, Any], db_url: str | None = None, **run: Any
) -> None:
    """``kedro run --pipelines=<names>`` in ``project`` (its own SQLite DB unless ``db_url``)."""
    saved_url, saved_root = os.environ.pop("MIXAI_DB_URL", None), project_root()
    # Kedro configures logging for the whole process (rich handler on stdout); other tests
    # read stdout, so put the root logger back afterwards.
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    if db_url:
        os.environ["MIXAI_DB_URL"] = db_url
    try:
        bootstrap_project(project)
        for name in names:
            with KedroSession.create(project_path=project, runtime_params=params) as session:
                session.run(pipeline_names=[name], **run)
    finally:
        os.environ.pop("MIXAI_DB_URL", None)
        if saved_url is not None:
            os.environ["MIXAI_DB_URL"] = saved_url
        set_project_root(saved_root)
        dispose_engines()
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world after ``make demo``'s sequence: demo_data, purge, then the default run."""
    project = copy_project(tmp_path_factory.mktemp("tiny-project"))
    run_pipelines(project, ["demo_data", "purge", "__default__"], TINY)
    return project
