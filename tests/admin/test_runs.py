"""Runs: one live run per kind, queued rows handed to the pipeline, and no run or row left
``running`` after its runner died."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.testclient import TestClient

from mixai_ml.admin import runs
from mixai_ml.admin.app import create_app
from mixai_ml.admin.console import Console
from mixai_ml.admin.runner import describe_exit, last_error_line
from mixai_ml.db import get_engine, schema
from mixai_ml.db.engine import dispose_engines
from mixai_ml.pipelines.training.nodes import start_training_job
from project_copy import copy_project, kedro_in_this_process, write_local_params

NOW = datetime(2026, 6, 7, 3, 0, tzinfo=UTC)
SETTINGS = runs.RunSettings(
    heartbeat_s=1.0,
    stale_after_s=30.0,
    claim_within_s=60.0,
    orphan_training_after_s=24 * 3600.0,
    log_folder=Path("runs"),
)


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


def run_row(engine: Engine, run_id: str) -> dict[str, object]:
    table = schema.pipeline_runs
    with engine.connect() as connection:
        return dict(
            connection.execute(select(table).where(table.c.run_id == run_id)).one()._mapping
        )


def job_rows(engine: Engine, run_id: str) -> dict[str, tuple[str, str | None]]:
    table = schema.training_jobs
    query = select(table.c.task, table.c.status, table.c.reason).where(table.c.run_id == run_id)
    with engine.connect() as connection:
        return {task: (status, reason) for task, status, reason in connection.execute(query)}


def test_a_run_queues_one_row_per_task_and_is_alone_of_its_kind(engine: Engine) -> None:
    everything = runs.queue_run(engine, runs.TRAIN, None, "cron", NOW)
    assert everything.run_id.startswith("train-20260607T030000-")
    assert job_rows(engine, everything.run_id) == {
        "master_reg": ("queued", None),
        "preset_cls": ("queued", None),
        "align_conf": ("queued", None),
    }
    with pytest.raises(runs.RunConflict) as conflict:
        runs.queue_run(engine, runs.TRAIN, "master_reg", "alice", NOW)
    assert conflict.value.live_run_id == everything.run_id
    purge = runs.queue_run(engine, runs.PURGE, None, "cron", NOW)  # another kind may run
    assert purge.training_job_ids == ()
    with pytest.raises(ValueError, match="unknown task"):
        runs.queue_run(engine, runs.TRAIN, "mix_everything", "alice", NOW)

    with engine.begin() as connection:
        runs.finish_run(connection, everything.run_id, "succeeded", "", NOW)
    one = runs.queue_run(engine, runs.TRAIN, "preset_cls", "alice", NOW)
    assert list(job_rows(engine, one.run_id)) == ["preset_cls"]


def test_the_database_keeps_one_live_run_per_kind_even_when_two_requests_race(
    engine: Engine,
) -> None:
    """The partial unique index stops the second insert that the first check could not see."""
    table = schema.pipeline_runs
    row = {"kind": "purge", "status": "queued", "requested_by": "cron", "requested_at": NOW}
    with engine.begin() as connection:
        connection.execute(insert(table).values(run_id="a", **row))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(table).values(run_id="b", **row))
    with engine.begin() as connection:
        connection.execute(insert(table).values(run_id="c", **{**row, "status": "failed"}))


def test_the_reaper_fails_dead_and_silent_runs_with_their_rows(engine: Engine) -> None:
    dead = runs.queue_run(engine, runs.TRAIN, "master_reg", "alice", NOW)
    silent = runs.queue_run(engine, runs.PURGE, None, "cron", NOW)
    table = schema.pipeline_runs
    with engine.begin() as connection:
        for run_id, host in ((dead.run_id, "here"), (silent.run_id, "elsewhere")):
            connection.execute(
                update(table)
                .where(table.c.run_id == run_id)
                .values(status="running", host=host, pid=4242, started_at=NOW, heartbeat_at=NOW)
            )
        connection.execute(
            update(schema.training_jobs)
            .where(schema.training_jobs.c.run_id == dead.run_id)
            .values(status="running", started_at=NOW)
        )

    def alive(pid: int) -> bool:
        return False

    # a few seconds later: the run on this host whose process is gone fails at once
    soon = NOW + timedelta(seconds=5)
    assert runs.reap(engine, SETTINGS, soon, host="here", alive=alive) == [dead.run_id]
    failed = run_row(engine, dead.run_id)
    assert failed["status"] == "failed"
    assert "pid 4242" in str(failed["reason"])
    assert "killed or crashed" in str(failed["reason"])
    assert job_rows(engine, dead.run_id)["master_reg"][0] == "failed"
    # the run on another host fails once its heartbeat is older than stale_after_s
    assert run_row(engine, silent.run_id)["status"] == "running"
    later = NOW + timedelta(seconds=SETTINGS.stale_after_s + 1)
    assert runs.reap(engine, SETTINGS, later, host="here", alive=alive) == [silent.run_id]
    assert "no heartbeat" in str(run_row(engine, silent.run_id)["reason"])


def test_the_reaper_fails_unclaimed_runs_and_orphaned_training_rows(engine: Engine) -> None:
    unclaimed = runs.queue_run(engine, runs.TRAIN, "align_conf", "alice", NOW)
    with engine.begin() as connection:
        connection.execute(
            insert(schema.training_jobs).values(
                training_job_id="plain-kedro-run",
                task="preset_cls",
                status="running",
                started_at=NOW,
            )
        )
    assert runs.reap(engine, SETTINGS, NOW + timedelta(seconds=10)) == []
    assert runs.reap(engine, SETTINGS, NOW + timedelta(minutes=2)) == [unclaimed.run_id]
    assert "never started" in str(run_row(engine, unclaimed.run_id)["reason"])
    assert job_rows(engine, unclaimed.run_id)["align_conf"][0] == "failed"
    jobs = schema.training_jobs
    query = select(jobs.c.status).where(jobs.c.training_job_id == "plain-kedro-run")
    with engine.connect() as connection:
        assert connection.execute(query).scalar_one() == "running"
    runs.reap(engine, SETTINGS, NOW + timedelta(hours=25))
    with engine.connect() as connection:
        assert connection.execute(query).scalar_one() == "failed"


def test_exit_descriptions_name_the_signal_and_the_error_line(tmp_path: Path) -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGKILL).startswith("was killed by SIGKILL (the out-of-memory")
    log = tmp_path / "run.log"
    log.write_text("starting\nTraceback\nValueError: no users in the test split\ndone\n\n")
    assert last_error_line(log) == "ValueError: no users in the test split"


def test_the_runner_starts_without_the_training_stack() -> None:
    """Every queued run starts a runner; it queues and records rows, so it has no use for
    torch, onnx or scikit-learn (3.6 s of its start-up on the 2-vCPU VM when it imported them)."""
    probe = (
        "import json, sys; import mixai_ml.admin.runner; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(output))
    assert {"sqlalchemy", "mixai_ml"} <= loaded
    assert not {"torch", "onnx", "sklearn"} & loaded


def wait_for(engine: Engine, run_id: str, statuses: tuple[str, ...], seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = run_row(engine, run_id)
        if row["status"] in statuses:
            return row
        time.sleep(0.5)
    raise AssertionError(f"{run_id} still {run_row(engine, run_id)['status']} after {seconds} s")


@pytest.mark.slow
def test_a_killed_runner_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGKILL to the runner and its kedro run (as the OOM killer or a reboot would): the
    reaper fails the run and its training rows with the reason."""
    project = copy_project(tmp_path / "project")
    url = f"sqlite:///{project / 'data' / 'mixai.db'}"
    engine = get_engine(url)
    queued = runs.queue_run(engine, runs.TRAIN, "master_reg", "alice", datetime.now(UTC))
    settings = runs.RunSettings.from_params(
        {
            "heartbeat_seconds": 0.5,
            "stale_after_seconds": 5,
            "claim_within_seconds": 60,
            "orphan_training_after_hours": 24,
            "log_folder": "data/08_reporting/runs",
        },
        project,
    )
    process = runs.start_runner(queued, project, settings, url)
    try:
        running = wait_for(engine, queued.run_id, ("running",), 60)
        assert running["pid"] == process.pid
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert runs.reap(engine, settings, datetime.now(UTC)) == [queued.run_id]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    failed = run_row(engine, queued.run_id)
    assert failed["status"] == "failed"
    assert "ended without recording an end" in str(failed["reason"])
    assert job_rows(engine, queued.run_id)["master_reg"][0] == "failed"
    dispose_engines()


@pytest.mark.slow
def test_a_runner_records_a_failing_command_with_its_last_error(tmp_path: Path) -> None:
    """A training run on a project without data: the run fails, saying which command failed
    and why; the queued row does not stay queued."""
    project = copy_project(tmp_path / "project")
    url = f"sqlite:///{project / 'data' / 'mixai.db'}"
    engine = get_engine(url)
    queued = runs.queue_run(engine, runs.TRAIN, "master_reg", "alice", datetime.now(UTC))
    log = project / "run.log"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixai_ml.admin.runner",
            queued.run_id,
            "--project",
            str(project),
            "--heartbeat",
            "0.5",
            "--log",
            str(log),
        ],
        env={**os.environ, "MIXAI_DB_URL": url},
        cwd=project,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1
    row = run_row(engine, queued.run_id)
    assert row["status"] == "failed"
    assert str(row["reason"]).startswith("`kedro run --pipelines=")
    assert "exited with code" in str(row["reason"])
    status, reason = job_rows(engine, queued.run_id)["master_reg"]
    assert status in ("failed", "skipped")
    assert reason
    assert row["heartbeat_at"] is not None
    assert row["host"]
    dispose_engines()


def test_the_training_pipeline_takes_over_the_rows_queued_for_it() -> None:
    model_input = pd.DataFrame({"split": ["train"] * 6 + ["validation"] * 2 + ["test"] * 2})
    queued = {"run_id": "train-x", "jobs": {"master_reg": "master_reg-queued-1"}}
    row, _ = start_training_job(model_input, {"n_samples": 10}, 10, queued, task="master_reg")
    assert row.loc[0, ["training_job_id", "run_id", "status"]].tolist() == [
        "master_reg-queued-1",
        "train-x",
        "running",
    ]
    # a task the run did not queue (and a plain kedro run) starts a row of its own
    for task, given in (("preset_cls", queued), ("master_reg", {"run_id": None, "jobs": {}})):
        row, _ = start_training_job(model_input, {"n_samples": 10}, 11, given, task=task)
        assert row.loc[0, "training_job_id"].startswith(f"{task}-")
        assert row.loc[0, "run_id"] is None
        assert row.loc[0, "status"] == "skipped"  # 10 samples, below 11


@pytest.mark.slow
def test_the_console_reaps_dead_runs_while_nobody_visits_it(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    write_local_params(
        project, {"admin": {"runs": {"heartbeat_seconds": 0.1, "stale_after_seconds": 0.5}}}
    )
    with kedro_in_this_process():
        console = Console(project, secure_cookies=False, environ={})
        table = schema.pipeline_runs
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        with console.engine.begin() as connection:
            connection.execute(
                insert(table).values(
                    run_id="train-dead",
                    kind="train",
                    status="running",
                    requested_by="cron",
                    requested_at=long_ago,
                    started_at=long_ago,
                    heartbeat_at=long_ago,
                    host="another-host",
                    pid=4242,
                )
            )
        with TestClient(create_app(console)):  # started, and not a single request
            deadline = time.monotonic() + 30
            while run_row(console.engine, "train-dead")["status"] == "running":
                assert time.monotonic() < deadline, "the console did not reap the dead run"
                time.sleep(0.2)
        row = run_row(console.engine, "train-dead")
    assert row["status"] == "failed"
    assert "no heartbeat" in str(row["reason"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"admin": {"session": {"idle_minute": 30}}},
            "admin.session: unknown setting(s) idle_minute",
        ),
        (
            {"admin": {"runs": {"heartbeat_second": 1}}},
            "admin.runs: unknown setting(s) heartbeat_second; known: claim_within_seconds, ",
        ),
        (
            {"monitoring": {"thresholds": {"rules": {"all_tasks": {"error_rat": {"max": 0.1}}}}}},
            "monitoring.thresholds.rules.all_tasks: unknown metric(s) error_rat",
        ),
        ({"ab_analysis": {"alpah": 0.1}}, "ab_analysis: unknown setting(s) alpah; known: alpha, "),
    ],
)
def test_a_misspelt_setting_stops_the_console_at_start(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    """Not when an operator opens the page that reads it."""
    project = copy_project(tmp_path / "project")
    write_local_params(project, overrides)
    with kedro_in_this_process(), pytest.raises(ValueError, match=re.escape(message)):
        Console(project, secure_cookies=False, environ={})
