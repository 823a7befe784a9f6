"""The process that carries out one queued run: ``python -m mixai_ml.admin.runner RUN_ID``.

Started by the console (:func:`mixai_ml.admin.runs.start_runner`), never inside a request. It
claims the run (``queued`` → ``running``, with its host and pid), sends a heartbeat every
``--heartbeat`` seconds, runs the run's ``kedro run`` commands one after the other (their output
appended to ``--log``) and records the end: ``succeeded``, or ``failed`` with the command, its
exit code or signal and its last line of output. SIGTERM stops the current command and fails
the run; so does finding the run already failed by the reaper (its heartbeats were late).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from mixai_ml.admin import runs
from mixai_ml.db import get_engine, schema

logger = logging.getLogger(__name__)
_runs = schema.pipeline_runs
_TAIL_BYTES = 8192


def describe_exit(code: int) -> str:
    """``exited with code 1``, or the signal that killed the process (and what it suggests)."""
    if code >= 0:
        return f"exited with code {code}"
    name = signal.Signals(-code).name
    if -code == signal.SIGKILL:
        return f"was killed by {name} (the out-of-memory killer sends it: see the runbook)"
    return f"was killed by {name}"


def last_error_line(log_file: Path) -> str:
    """The last line of ``log_file`` naming an error, else its last non-empty line."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(max(0, log_file.stat().st_size - _TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or [""])[-1][:500]


class Runner:
    """Runs one claimed run; see the module documentation."""

    def __init__(
        self, engine: Engine, run_id: str, project: Path, heartbeat_s: float, log_file: Path
    ) -> None:
        self.engine, self.run_id, self.project = engine, run_id, project
        self.heartbeat_s, self.log_file = heartbeat_s, log_file
        self._done = threading.Event()
        self._stopped: str | None = None
        self._child: subprocess.Popen[bytes] | None = None

    def claim(self) -> Any | None:
        """Mark the run ``running`` by this process; its row, or ``None`` if not ``queued``."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(_runs)
                .where(_runs.c.run_id == self.run_id, _runs.c.status == "queued")
                .values(
                    status="running",
                    started_at=now,
                    heartbeat_at=now,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    log_file=str(self.log_file),
                )
            )
            if not claimed.rowcount:
                return None
            return connection.execute(select(_runs).where(_runs.c.run_id == self.run_id)).one()

    def stop(self, reason: str) -> None:
        """Stop the current command; the run ends ``failed`` with ``reason``."""
        self._stopped = reason
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()

    def _beat(self) -> None:
        while not self._done.wait(self.heartbeat_s):
            try:
                with self.engine.begin() as connection:
                    alive = connection.execute(
                        update(_runs)
                        .where(_runs.c.run_id == self.run_id, _runs.c.status == "running")
                        .values(heartbeat_at=datetime.now(UTC))
                    ).rowcount
            except SQLAlchemyError as error:  # the reaper decides if this lasts
                logger.warning("heartbeat of %s not recorded: %s", self.run_id, error)
                continue
            if not alive:
                self.stop("the run was failed from outside (its heartbeats came too late)")

    def _training_jobs(self) -> dict[str, str]:
        jobs = schema.training_jobs
        query = select(jobs.c.task, jobs.c.training_job_id).where(jobs.c.run_id == self.run_id)
        with self.engine.connect() as connection:
            return {str(task): str(job) for task, job in connection.execute(query)}

    def _step(self, arguments: list[str], params: str | None) -> str:
        """Run one ``kedro run``; ``""`` when it succeeded, else why it failed."""
        shown = " ".join(["kedro run", *arguments])
        command = [sys.executable, "-m", "kedro", "run", *arguments]
        if params:
            command.append(f"--params={params}")
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: {shown}\n".encode())
            log.flush()
            self._child = subprocess.Popen(
                command, cwd=self.project, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            code = self._child.wait()
        if self._stopped:
            return f"`{shown}` stopped: {self._stopped}"
        if code:
            return f"`{shown}` {describe_exit(code)}: {last_error_line(self.log_file)}"
        return ""

    def run(self, row: Any) -> tuple[str, str]:
        """Run every step of the claimed run; its end status and reason."""
        beating = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        beating.start()
        try:
            params = None
            if row.kind == runs.TRAIN:
                params = runs.queued_params(self.run_id, self._training_jobs())
            for arguments in runs.run_plan(row.kind, row.task):
                reason = self._stopped or self._step(arguments, params)
                if reason:
                    return "failed", reason
            return "succeeded", ""
        finally:
            self._done.set()
            beating.join()

    def finish(self, status: str, reason: str) -> None:
        with self.engine.begin() as connection:
            if not runs.finish_run(connection, self.run_id, status, reason, datetime.now(UTC)):
                logger.warning("%s had already ended; its end was not recorded again", self.run_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixai_ml.admin.runner", description=__doc__)
    parser.add_argument("run_id")
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--heartbeat", type=float, required=True, help="seconds")
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        filename=args.log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    runner = Runner(get_engine(), args.run_id, args.project, args.heartbeat, args.log)
    row = runner.claim()
    if row is None:
        logger.warning("%s is not queued (claimed or reaped already): nothing to do", args.run_id)
        return 0

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        runner.stop("the runner was sent SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    status, reason = "failed", "the runner crashed (see its log)"
    try:
        status, reason = runner.run(row)
    finally:
        runner.finish(status, reason)
    logger.info("%s %s %s", args.run_id, status, reason)
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
