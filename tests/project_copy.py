"""Copies of the project for tests: their own ``conf/`` and ``data/`` (and so their own SQLite
database), run through Kedro in the test process."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mixai_inference.bundle import sha256_bytes
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db.engine import dispose_engines
from mixai_ml.export import registry
from mixai_ml.export.store import ModelStore

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


def registry_table(project: Path, db_url: str | None = None) -> AppTableDataset:
    """The project's ``model_registry`` (its own SQLite file unless ``db_url``)."""
    return AppTableDataset(
        table_name="model_registry",
        credentials={"con": db_url},
        filepath=str(project / "data" / "mixai.db"),
        write_mode="upsert",
    )


def seed_registry(
    project: Path,
    task: str,
    versions: Sequence[str],
    active: str,
    now: datetime,
    db_url: str | None = None,
) -> None:
    """Store ``versions`` of ``task`` (their bytes are their names) and register them, one
    minute apart, with ``active`` promoted."""
    store = ModelStore(project / "data" / "06_models" / "registry")
    rows = []
    for minute, version in enumerate(versions):
        content, uri = version.encode(), ModelStore.uri(task, version)
        store.write({uri: content})
        model = registry.ExportedModel(task, version, uri, sha256_bytes(content), {})
        rows.append(registry.candidate_row(model, now + pd.Timedelta(minutes=minute)))
    registry_table(project, db_url).save(registry.promote(pd.DataFrame(rows), task, active, now))


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merged(base.get(key), value) for key, value in override.items()}}
    return override


def base_parameters(project: Path = PROJECT) -> dict[str, Any]:
    """Every ``conf/base/parameters*.yml`` of ``project``, merged as Kedro merges them."""
    base: dict[str, Any] = {}
    for path in sorted((project / "conf" / "base").glob("parameters*.yml")):
        base.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return base


def changed_parameters(
    path: str, key: str, value: Any = None, *, drop: bool = False
) -> dict[str, Any]:
    """The project's parameters with ``key`` set to ``value`` (or dropped) in the mapping at the
    dotted ``path``: a typo or a missing key, for the readers' tests."""
    params = base_parameters()
    section = params
    for part in path.split("."):
        section = section[part]
    if drop:
        del section[key]
    else:
        section[key] = value
    return params


def write_local_params(project: Path, overrides: dict[str, Any]) -> None:
    """Make ``overrides`` (nested, like runtime params) the project's ``conf/local`` parameters,
    so that a ``kedro run`` in another process uses them too. Kedro replaces a top-level key of
    ``base`` by ``local``'s, so each overridden key is written whole, merged with ``base``."""
    base = base_parameters(project)
    merged = {key: _merged(base.get(key), value) for key, value in overrides.items()}
    target = project / "conf" / "local" / "parameters.yml"
    target.write_text(yaml.safe_dump(merged, sort_keys=True), encoding="utf-8")
