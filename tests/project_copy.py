"""Copies of the project for tests: their own ``conf/`` and ``data/`` (and so their own SQLite
database), run through Kedro in the test process."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mixai_ml.db.engine import dispose_engines

PROJECT = Path(__file__).resolve().parents[1]
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


def copy_project(destination: Path) -> Path:
    """The project's configuration in ``destination`` with empty data layers."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "pyproject.toml", destination)
    shutil.copy(PROJECT / ".telemetry", destination)
    shutil.copytree(PROJECT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    (destination / "src").mkdir()  # Kedro checks it exists; the package is installed
    for layer in LAYERS:
        (destination / "data" / layer).mkdir(parents=True)
    return destination


@contextmanager
def kedro_in_this_process() -> Iterator[None]:
    """Undo what a Kedro session in the test process leaves behind: the database engines and
    the root logger's handlers (Kedro configures logging process-wide; other tests read
    stdout)."""
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    try:
        yield
    finally:
        dispose_engines()
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)


def run_pipelines(
    project: Path, names: list[str], params: dict[str, Any], db_url: str | None = None, **run: Any
) -> None:
    """``kedro run --pipelines=<names>`` in ``project`` (its own SQLite DB unless ``db_url``)."""
    saved_url = os.environ.pop("MIXAI_DB_URL", None)
    if db_url:
        os.environ["MIXAI_DB_URL"] = db_url
    try:
        with kedro_in_this_process():
            bootstrap_project(project)
            for name in names:
                with KedroSession.create(project_path=project, runtime_params=params) as session:
                    session.run(pipeline_names=[name], **run)
    finally:
        os.environ.pop("MIXAI_DB_URL", None)
        if saved_url is not None:
            os.environ["MIXAI_DB_URL"] = saved_url
