"""Kedro-Viz, the Airflow DAGs from kedro-airflow and the documentation site, offline."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.framework.project import pipelines as registered_pipelines
from kedro.framework.startup import bootstrap_project
from sqlalchemy import create_engine, text

from mixai_inference.tasks import task_names, trunks

from .workflow_support import (
    KEDRO,
    PROJECT,
    kedro_in_this_process,
    network_attempts,
    run_offline,
)


def pipeline_nodes(project: Path) -> dict[str, set[str]]:
    """Node names of every registered pipeline of ``project``."""
    with kedro_in_this_process():
        bootstrap_project(project)
        return {name: {n.name for n in pipe.nodes} for name, pipe in registered_pipelines.items()}


@pytest.mark.slow
def test_kedro_viz_build_shows_every_pipeline(tiny_project: Path, tmp_path: Path) -> None:
    """``kedro viz build`` succeeds offline and its static site has every pipeline and node."""
    run_offline([str(KEDRO), "viz", "build"], cwd=tiny_project, guard=tmp_path)
    assert network_attempts(tmp_path) == []
    api = tiny_project / "build" / "api"
    assert (tiny_project / "build" / "index.html").is_file()
    expected = pipeline_nodes(tiny_project)
    assert {path.name for path in (api / "pipelines").iterdir()} == set(expected)
    for name, nodes in expected.items():
        graph = json.loads((api / "pipelines" / name).read_text())
        shown = {node["full_name"] for node in graph["nodes"] if node["type"] == "task"}
        assert shown == nodes, name


class _Task:
    """A task instance of a DAG: the function it runs; ``>>`` records an edge."""

    def __init__(self, task_id: str, function: Callable[[], None], dag: _Dag) -> None:
        self.task_id, self.function, self.dag = task_id, function, dag

    def __rshift__(self, other: _Task) -> _Task:
        self.dag.edges.add((self.task_id, other.task_id))
        return other


class _Dag:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.tasks: dict[str, _Task] = {}
        self.edges: set[tuple[str, str]] = set()

    def order(self) -> list[str]:
        """Task ids in an order that respects every edge (fails on a cycle)."""
        done: list[str] = []
        waiting = dict.fromkeys(self.tasks)
        while waiting:
            ready = [t for t in waiting if all(a in done for a, b in self.edges if b == t)]
            assert ready, f"cycle among {sorted(waiting)}"
            done += sorted(ready)
            for task_id in ready:
                del waiting[task_id]
        return done


@pytest.fixture
def fake_airflow(monkeypatch: pytest.MonkeyPatch) -> list[_Dag]:
    """A stand-in ``airflow.sdk`` (Airflow 3's decorators) that records the DAGs a file defines."""
    dags: list[_Dag] = []

    def dag(**settings: Any) -> Callable[[Callable[[], None]], Callable[[], _Dag]]:
        def decorate(build: Callable[[], None]) -> Callable[[], _Dag]:
            def instantiate() -> _Dag:
                dags.append(_Dag(settings))
                build()
                return dags[-1]

            return instantiate

        return decorate

    def task(task_id: str) -> Callable[[Callable[[], None]], Callable[[], _Task]]:
        def decorate(function: Callable[[], None]) -> Callable[[], _Task]:
            def call() -> _Task:
                dags[-1].tasks[task_id] = _Task(task_id, function, dags[-1])
                return dags[-1].tasks[task_id]

            return call

        return decorate

    sdk = types.ModuleType("airflow.sdk")
    sdk.dag, sdk.task = dag, task  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "airflow", types.ModuleType("airflow"))
    monkeypatch.setitem(sys.modules, "airflow.sdk", sdk)
    return dags


def load_dag(path: Path, dags: list[_Dag]) -> tuple[_Dag, dict[str, Any]]:
    """Execute a generated DAG file as Airflow's scheduler would: its DAG and its globals."""
    namespace: dict[str, Any] = {"__name__": path.stem}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return dags[-1], namespace


def node_groups(dag: _Dag, module: dict[str, Any]) -> dict[str, list[str]]:
    """The Kedro nodes each task runs, found by calling the tasks with the runner replaced."""
    calls: list[list[str]] = []
    module["_run_kedro_node"] = lambda node_names: calls.append(list(node_names))
    for task in dag.tasks.values():
        task.function()
    return dict(zip(dag.tasks, calls, strict=True))


def withdraw_one_user(database: Path) -> str:
    """Withdraw the consent of a user who has features and no legal hold; return the user."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            user = connection.execute(
                text(
                    "SELECT j.user_id FROM features_store f JOIN jobs j ON j.job_id = f.job_id "
                    "JOIN ml_consent c ON c.user_id = j.user_id "
                    "WHERE c.consented AND c.withdrawn_at IS NULL AND j.user_id NOT IN "
                    "(SELECT h.user_id FROM ml_exclusions e JOIN jobs h ON h.user_id = e.user_id "
                    " OR h.job_id = e.job_id WHERE e.reason = 'legal_hold') "
                    "ORDER BY j.user_id LIMIT 1"
                )
            ).scalar_one()
            connection.execute(
                text("UPDATE ml_consent SET withdrawn_at = :now WHERE user_id = :user"),
                {"now": "2026-01-01 00:00:00.000000", "user": user},
            )
        return str(user)
    finally:
        engine.dispose()


def count_rows(database: Path, sql: str, **params: Any) -> int:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_airflow_dags_schedule_every_node_in_order(
    tiny_project: Path, tmp_path: Path, fake_airflow: list[_Dag], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make airflow-dags``: the weekly retraining, the hourly purge and monitoring, each Kedro
    node in one task, tasks ordered as the nodes' data dependencies; the purge DAG really
    purges, and the monitoring DAG reports the missed deadline before and after."""
    dags_folder = tmp_path / "dags"
    command = [str(KEDRO), "airflow", "create", "--pipelines=__default__,purge,monitoring"]
    command += ["--group-by", "memory", "--jinja-file", str(PROJECT / "conf" / "airflow_dag.j2")]
    done = run_offline(
        [*command, "--target-dir", str(dags_folder)], tiny_project, tmp_path / "guard"
    )
    assert network_attempts(tmp_path / "guard") == []
    assert "is interrupted" not in done.stdout + done.stderr  # mixai_ml.QUIET_WARNINGS
    assert sorted(path.name for path in dags_folder.iterdir()) == [
        "mixai_ml_dag.py",
        "mixai_ml_monitoring_dag.py",
        "mixai_ml_purge_dag.py",
    ]
    weekly, weekly_module = load_dag(dags_folder / "mixai_ml_dag.py", fake_airflow)
    assert weekly.settings["dag_id"] == "mixai_ml_weekly_retraining"
    assert weekly.settings["schedule"] == "0 3 * * 0"
    assert weekly.settings["max_active_runs"] == 1
    default = pipeline_nodes(tiny_project)["__default__"]
    groups = node_groups(weekly, weekly_module)
    assert sorted(name for names in groups.values() for name in names) == sorted(default)
    task_of = {name: task_id for task_id, names in groups.items() for name in names}
    position = {task_id: index for index, task_id in enumerate(weekly.order())}
    for child, parents in registered_pipelines["__default__"].node_dependencies.items():
        for parent in parents:
            assert position[task_of[parent.name]] <= position[task_of[child.name]]
    # a trunk's tasks pass their run rows to its multi-task node in memory: one Airflow task
    trained_in = {task: task_of[f"{task}.train"] for task in task_names()}
    for trunk, tasks in trunks().items():
        assert {trained_in[task] for task in tasks} == {task_of[f"train_{trunk}_multitask"]}
    assert len(set(trained_in.values())) == len(task_names()) - sum(
        len(tasks) - 1 for tasks in trunks().values()
    )

    # the purge DAG, run for real in a copy of the tiny project where one more user withdrew
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, ignore=shutil.ignore_patterns("audio", "build"))
    database = project / "data" / "mixai.db"
    user = withdraw_one_user(database)
    features_of_user = (
        "SELECT COUNT(*) FROM features_store f JOIN jobs j ON j.job_id = f.job_id "
        "WHERE j.user_id = :user"
    )
    assert count_rows(database, features_of_user, user=user) > 0
    monkeypatch.setenv("MIXAI_PROJECT_PATH", str(project))
    monkeypatch.delenv("MIXAI_DB_URL", raising=False)
    purge, purge_module = load_dag(dags_folder / "mixai_ml_purge_dag.py", fake_airflow)
    assert purge.settings["dag_id"] == "mixai_ml_hourly_purge"
    assert purge.settings["schedule"] == "15 * * * *"
    assert purge_module["project_path"] == project
    monitoring, _ = load_dag(dags_folder / "mixai_ml_monitoring_dag.py", fake_airflow)
    assert monitoring.settings["dag_id"] == "mixai_ml_hourly_monitoring"
    assert monitoring.settings["schedule"] == "25 * * * *"

    def run(dag: _Dag) -> dict[str, Any]:
        with kedro_in_this_process():
            for task_id in dag.order():
                dag.tasks[task_id].function()
        summary = project / "data" / "08_reporting" / "monitoring_summary.json"
        return dict(json.loads(summary.read_text())["privacy"])

    # the user withdrew on 2026-01-01: overdue before the purge, reported late after it
    before = run(monitoring)
    assert (before["pending"], before["overdue"], before["level"]) == (1, 1, "missed")
    run(purge)
    assert count_rows(database, features_of_user, user=user) == 0
    audited = "SELECT COUNT(*) FROM purge_audit WHERE user_id = :user AND rows_deleted > 0"
    assert count_rows(database, audited, user=user) > 0
    after = run(monitoring)
    assert (after["pending"], after["level"]) == (0, "ok")
    assert after["late_recently"] == before["late_recently"] + 1


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """``make docs``: ``mkdocs build --strict`` (broken links and anchors are errors)."""
    run_offline(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "-d", str(tmp_path)],
        cwd=PROJECT,
        guard=tmp_path / "guard",
    )
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "img" / "architecture.png").is_file()
    assert network_attempts(tmp_path / "guard") == []


def _nav_pages(entries: list[Any]) -> Iterator[str]:
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from _nav_pages(value)
        else:
            yield value


def test_every_docs_page_is_in_the_navigation() -> None:
    """mkdocs only informs about pages missing from ``nav``; here it is an error."""
    config = yaml.safe_load((PROJECT / "mkdocs.yml").read_text())
    pages = {
        str(path.relative_to(PROJECT / "docs"))
        for path in (PROJECT / "docs").rglob("*.md")
        if not path.relative_to(PROJECT / "docs").parts[0].startswith("_")
    }
    assert sorted(_nav_pages(config["nav"])) == sorted(pages)


def test_architecture_picture_is_drawn_by_its_script(tmp_path: Path) -> None:
    """docs/_scripts/architecture.py draws docs/img/architecture.png (the README's picture)."""
    output = tmp_path / "architecture.png"
    run_offline(
        [sys.executable, str(PROJECT / "docs/_scripts/architecture.py"), str(output)],
        cwd=tmp_path,
        guard=tmp_path / "guard",
    )
    for picture in (output, PROJECT / "docs/img/architecture.png"):
        header = picture.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", header[16:24])
        assert width >= 1200
        assert 0.3 < height / width < 0.9
    assert os.path.getsize(PROJECT / "docs/img/architecture.png") < 400_000
