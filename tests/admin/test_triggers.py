"""The triggers with the right secret: 202 with the queued rows, 409 while a run of the same
kind is live, the run in its own process, and its rows ended when it ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from admin_support import CRON_SECRET, admin_server
from mixai_ml.db import schema
from project_copy import copy_project

pytestmark = pytest.mark.slow
AUTHORIZED = {"Authorization": f"Bearer {CRON_SECRET}"}
RUN_TIMEOUT_S = 300
LIVE = schema.LIVE_RUN_STATUSES


def run_of(engine: Engine, run_id: str) -> dict[str, object]:
    table = schema.pipeline_runs
    with engine.connect() as connection:
        row = connection.execute(select(table).where(table.c.run_id == run_id)).one()
    return dict(row._mapping)


def jobs_of(engine: Engine, run_id: str) -> dict[str, tuple[str, str, str | None]]:
    table = schema.training_jobs
    query = select(table.c.training_job_id, table.c.task, table.c.status, table.c.reason)
    with engine.connect() as connection:
        rows = connection.execute(query.where(table.c.run_id == run_id)).all()
    return {job: (task, status, reason) for job, task, status, reason in rows}


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {RUN_TIMEOUT_S} s")
        time.sleep(0.5)


def test_a_trigger_queues_one_run_per_kind_and_its_rows_always_end(tmp_path: Path) -> None:
    with admin_server(copy_project(tmp_path / "project")) as server:
        engine = server.engine()

        def trigger(path: str) -> httpx.Response:
            return httpx.post(f"{server.url}{path}", headers=AUTHORIZED, timeout=60)

        assert trigger("/api/cron/train?task=no_such_task").status_code == 400

        train = trigger("/api/cron/train?task=preset_cls")
        assert train.status_code == 202, train.text
        run_id, job_ids = train.json()["run_id"], train.json()["training_job_ids"]
        assert len(job_ids) == 1
        (task, status, _), *others = jobs_of(engine, run_id).values()
        assert not others
        assert task == "preset_cls"
        assert set(jobs_of(engine, run_id)) == set(job_ids)
        assert status in ("queued", "running")
        assert run_of(engine, run_id)["requested_by"] == "cron"

        # a second training run, of any task, waits for this one; a purge does not
        for path in ("/api/cron/train", "/api/cron/train?task=master_reg"):
            refused = trigger(path)
            assert refused.status_code == 409, refused.text
            assert refused.json()["run_id"] == run_id
        purge = trigger("/api/cron/purge")
        assert purge.status_code == 202, purge.text
        assert purge.json()["training_job_ids"] == []
        assert trigger("/api/cron/purge").status_code == 409

        # the purge runs in its own process and succeeds on a database with nothing to purge
        purge_id = purge.json()["run_id"]
        wait_until(lambda: run_of(engine, purge_id)["status"] == "succeeded", "the purge")

        # the training run ends, whatever it met on an empty project, and so does its row
        wait_until(lambda: run_of(engine, run_id)["status"] not in LIVE, "the training run")
        ended = run_of(engine, run_id)
        ((_, status, reason),) = jobs_of(engine, run_id).values()
        assert status in ("succeeded", "failed", "skipped"), (status, reason)
        assert ended["status"] == "succeeded" or (ended["reason"] and reason), (ended, reason)

        # nothing live any more: the next trigger is accepted
        again = trigger("/api/cron/train?task=preset_cls")
        assert again.status_code == 202, again.text
        assert again.json()["run_id"] != run_id

        audit = schema.admin_audit_log
        with engine.connect() as connection:
            actions = connection.execute(
                select(audit.c.actor, audit.c.action, audit.c.target).order_by(audit.c.at)
            ).all()
        assert [tuple(row) for row in actions] == [
            ("cron", "training.queue", run_id),
            ("cron", "purge.queue", purge_id),
            ("cron", "training.queue", again.json()["run_id"]),
        ]
