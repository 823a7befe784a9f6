"""Training and purge runs started by the console or a trigger, each in its own process.

A run is a ``pipeline_runs`` row. :func:`queue_run` creates it ``queued`` (a training run also
creates one ``queued`` ``training_jobs`` row per task) and refuses while a run of the same kind
is live; :func:`start_runner` starts :mod:`mixai_ml.admin.runner`, which claims the run, runs
the Kedro commands of :func:`run_plan` one after the other, sends a heartbeat while it works and
records the end. The training pipeline takes the queued rows over (``training.queued``), so they
go ``queued`` → ``running`` → ``succeeded`` / ``failed`` / ``skipped``.

A runner can be killed (OOM killer, a reboot) before it records anything. :func:`reap` marks
such runs ``failed`` with the reason: on this host when the runner's process is gone, anywhere
when its heartbeat is older than ``stale_after_s``; a run nobody claimed within
``claim_within_s`` also fails. The run's ``training_jobs`` rows that had not ended fail with it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from mixai_inference.tasks import task_names
from mixai_ml.admin import audit
from mixai_ml.db import schema
from mixai_ml.parameters import settings_section
from mixai_ml.training.jobs import new_training_job_id

TRAIN, PURGE = schema.RUN_KINDS
_runs = schema.pipeline_runs
_jobs = schema.training_jobs
_UNFINISHED_JOBS = ("queued", "running")


@dataclass(frozen=True)
class RunSettings:
    """The ``admin.runs`` parameters (``conf/base/parameters_admin.yml``)."""

    heartbeat_s: float
    stale_after_s: float
    claim_within_s: float
    orphan_training_after_s: float
    log_folder: Path

    @classmethod
    def from_params(cls, params: Mapping[str, Any], project: Path) -> RunSettings:
        """Settings from ``admin.runs``; a missing or unknown key or a short timeout raises."""
        params = settings_section(
            params,
            "admin.runs",
            required=(
                "heartbeat_seconds",
                "stale_after_seconds",
                "claim_within_seconds",
                "orphan_training_after_hours",
                "log_folder",
            ),
        )
        settings = cls(
            heartbeat_s=float(params["heartbeat_seconds"]),
            stale_after_s=float(params["stale_after_seconds"]),
            claim_within_s=float(params["claim_within_seconds"]),
            orphan_training_after_s=3600.0 * float(params["orphan_training_after_hours"]),
            log_folder=project / str(params["log_folder"]),
        )
        if not 0 < 3 * settings.heartbeat_s <= settings.stale_after_s:
            raise ValueError(
                "admin.runs.stale_after_seconds must be at least 3 heartbeats "
                f"(heartbeat_seconds={settings.heartbeat_s}, got {settings.stale_after_s})"
            )
        return settings


class RunConflict(RuntimeError):
    """A run of the same kind is queued or running."""

    def __init__(self, kind: str, live_run_id: str | None) -> None:
        super().__init__(f"a {kind} run is already queued or running ({live_run_id})")
        self.kind, self.live_run_id = kind, live_run_id


@dataclass(frozen=True)
class QueuedRun:
    run_id: str
    kind: str
    task: str | None
    training_job_ids: tuple[str, ...]


def run_plan(kind: str, task: str | None) -> list[list[str]]:
    """The ``kedro run`` arguments of each step of a run, in order.

    Every task: ``kedro run`` (features → training → evaluation → export → ab_analysis →
    monitoring), as the weekly schedule runs it. One task: new features, that task's training,
    then evaluation and export, so that its model is registered with its promotion decision.
    Purge: ``kedro run --pipelines=purge``.
    """
    if kind == PURGE:
        return [["--pipelines=purge"]]
    if task is None:
        return [[]]
    return [
        ["--pipelines=features"],
        ["--pipelines=training", f"--namespaces={task}"],
        ["--pipelines=evaluation,export"],
    ]


def queued_params(run_id: str, training_jobs: Mapping[str, str]) -> str:
    """``kedro run --params`` value that hands the queued rows to the training pipeline."""
    items = [f"training.queued.run_id={run_id}"]
    items += [f"training.queued.jobs.{task}={job}" for task, job in training_jobs.items()]
    return ",".join(items)


def live_run(connection: Connection, kind: str) -> str | None:
    """The id of the queued or running run of ``kind``, if any."""
    query = select(_runs.c.run_id).where(
        _runs.c.kind == kind, _runs.c.status.in_(schema.LIVE_RUN_STATUSES)
    )
    return connection.execute(query).scalars().first()


def queue_run(
    engine: Engine, kind: str, task: str | None, requested_by: str, now: datetime
) -> QueuedRun:
    """Create a ``queued`` run (and, for training, its ``queued`` ``training_jobs`` rows),
    with its audit row (``training.queue`` or ``purge.queue``).

    Raises:
        ValueError: For an unknown kind or task.
        RunConflict: While a run of the same kind is queued or running.
    """
    if kind not in schema.RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}; one of {schema.RUN_KINDS}")
    if task is not None and (kind != TRAIN or task not in task_names()):
        raise ValueError(f"unknown task {task!r}; one of {', '.join(task_names())}")
    run_id = f"{kind}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    tasks = [] if kind == PURGE else ([task] if task else list(task_names()))
    jobs = {name: new_training_job_id(name, now) for name in tasks}
    try:
        with engine.begin() as connection:
            live = live_run(connection, kind)
            if live is not None:
                raise RunConflict(kind, live)
            connection.execute(
                insert(_runs).values(
                    run_id=run_id,
                    kind=kind,
                    task=task,
                    status="queued",
                    requested_by=requested_by,
                    requested_at=now,
                )
            )
            for name, job_id in jobs.items():
                connection.execute(
                    insert(_jobs).values(
                        training_job_id=job_id, task=name, status="queued", run_id=run_id
                    )
                )
            audit.record(
                connection,
                actor=requested_by,
                action=f"{'training' if kind == TRAIN else kind}.queue",
                target=run_id,
                before=None,
                after={"task": task or "all", "training_job_ids": list(jobs.values())},
                at=now,
            )
    except IntegrityError:  # another request queued one between our check and our insert
        with engine.connect() as connection:
            raise RunConflict(kind, live_run(connection, kind)) from None
    return QueuedRun(run_id, kind, task, tuple(jobs.values()))


def start_runner(
    run: QueuedRun, project: Path, settings: RunSettings, database_url: str
) -> subprocess.Popen[bytes]:
    """Start the runner of ``run`` in a new process session (it outlives the console).

    The console waits for it in a thread, so that it leaves no zombie behind.
    """
    settings.log_folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mixai_ml.admin.runner",
        run.run_id,
        "--project",
        str(project),
        "--heartbeat",
        str(settings.heartbeat_s),
        "--log",
        str(settings.log_folder / f"{run.run_id}.log"),
    ]
    # the runner and its kedro runs use the console's database (secrets stay out of argv)
    environment = {**os.environ, "MIXAI_DB_URL": database_url}
    process = subprocess.Popen(
        command,
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, name=f"wait-{run.run_id}", daemon=True).start()
    return process


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


def fail_unfinished_jobs(connection: Connection, run_id: str, reason: str, now: datetime) -> int:
    """Mark the run's ``training_jobs`` rows that have not ended ``failed``; how many."""
    result = connection.execute(
        update(_jobs)
        .where(_jobs.c.run_id == run_id, _jobs.c.status.in_(_UNFINISHED_JOBS))
        .values(status="failed", reason=reason, finished_at=now)
    )
    return int(result.rowcount)


def finish_run(
    connection: Connection, run_id: str, status: str, reason: str, now: datetime
) -> bool:
    """Record the end of a running run (and fail its unfinished rows); ``False`` if it had
    ended already (e.g. reaped)."""
    result = connection.execute(
        update(_runs)
        .where(_runs.c.run_id == run_id, _runs.c.status.in_(schema.LIVE_RUN_STATUSES))
        .values(status=status, reason=reason or None, finished_at=now)
    )
    if not result.rowcount:
        return False
    fail_unfinished_jobs(
        connection, run_id, reason or "the run ended without recording this task", now
    )
    return True


@overload
def utc(stamp: datetime) -> datetime: ...
@overload
def utc(stamp: None) -> None: ...
def utc(stamp: datetime | None) -> datetime | None:
    """``stamp`` timezone-aware (SQLite gives back naive values, which are UTC)."""
    if stamp is None or stamp.tzinfo is not None:
        return stamp
    return stamp.replace(tzinfo=UTC)


def _why_dead(
    row: Any, settings: RunSettings, now: datetime, host: str, alive: Callable[[int], bool]
) -> str | None:
    """Why the live run ``row`` cannot be running any more, or ``None``."""
    if row.status == "queued":
        if utc(row.requested_at) < now - timedelta(seconds=settings.claim_within_s):
            return f"never started: no runner claimed it within {settings.claim_within_s:g} s"
        return None
    if row.host == host and row.pid is not None and not alive(int(row.pid)):
        return f"the runner (pid {row.pid}) ended without recording an end: killed or crashed"
    heartbeat = utc(row.heartbeat_at or row.started_at or row.requested_at)
    if heartbeat < now - timedelta(seconds=settings.stale_after_s):
        return (
            f"no heartbeat from the runner (pid {row.pid} on {row.host}) since "
            f"{heartbeat:%Y-%m-%d %H:%M:%S} UTC: killed or crashed"
        )
    return None


def reap(
    engine: Engine,
    settings: RunSettings,
    now: datetime,
    *,
    host: str | None = None,
    alive: Callable[[int], bool] = process_alive,
) -> list[str]:
    """Fail dead runs and their unfinished rows, and ``running`` rows of plain Kedro runs older
    than ``orphan_training_after_s``; return the ids of the runs failed."""
    host = host or socket.gethostname()
    reaped = []
    with engine.begin() as connection:
        live = connection.execute(
            select(_runs).where(_runs.c.status.in_(schema.LIVE_RUN_STATUSES))
        ).all()
        for row in live:
            reason = _why_dead(row, settings, now, host, alive)
            if reason and finish_run(connection, row.run_id, "failed", reason, now):
                reaped.append(str(row.run_id))
        cutoff = now - timedelta(seconds=settings.orphan_training_after_s)
        connection.execute(
            update(_jobs)
            .where(
                and_(
                    _jobs.c.status == "running",
                    _jobs.c.run_id.is_(None),
                    _jobs.c.started_at < cutoff,
                )
            )
            .values(
                status="failed",
                reason=(
                    f"no end recorded within {settings.orphan_training_after_s / 3600:g} h of "
                    "its start: the kedro process was killed or crashed"
                ),
                finished_at=now,
            )
        )
    return reaped
