"""What the service runs besides HTTP: the predictor, its control from the database, hot reload.

:class:`Runtime` owns

* the **predictor** (:attr:`Runtime.predictor`), replaced as a whole by a hot reload:
  a request takes the current one once and finishes on it;
* the **control refresh**: every ``control_refresh_s`` the control rows are read from the
  database and merged (:func:`~mixai_inference.control.resolve_control`); the predictor
  swaps them in without rebuilding its sessions, and each task's out-of-distribution policy
  (``ml_task_settings``) is set on its guards. The database unreachable: the last known
  control keeps serving and :meth:`Runtime.readiness` says it is stale;
* the **bundle watch**: ``manifest.json`` is polled every ``bundle_poll_s`` (and SIGHUP asks
  at once); a changed bundle is opened beside the old one, verified (manifest valid, every
  model it ships that the control routes to loads and warms) and swapped in, else refused,
  logged and counted while the old one keeps serving;
* the **database writer** (:class:`~mixai_inference.serve.writer.DatabaseWriter`).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from mixai_inference.bundle import MANIFEST_NAME
from mixai_inference.control import ControlRows, resolve_control
from mixai_inference.metrics import MetricsSink
from mixai_inference.predictor import Predictor
from mixai_inference.serve.settings import Settings
from mixai_inference.serve.store import engine_for, read_control, schema_problems
from mixai_inference.serve.writer import DatabaseWriter
from mixai_inference.tasks import task_names

logger = logging.getLogger(__name__)


@dataclass
class ControlStatus:
    """How fresh the control is."""

    read_at: float | None = None
    """``time.monotonic()`` of the last successful read."""
    error: str | None = None
    """Why the last read failed, if it did."""
    schema: tuple[str, ...] = ()
    """What the database lacks (``mixai-db upgrade`` fixes it)."""


def _signature(path: os.PathLike[str] | str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _freeze_heap() -> None:
    """Put what lives now (modules, the bundle, its sessions) out of the collector's sight.

    They live as long as the worker; rescanning them made every full collection a 30-50 ms
    pause for the requests in flight (``benchmarks/bench_serve.py``).
    """
    gc.collect()
    gc.freeze()


class Runtime:
    """The serving state of one process (see the module documentation)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = engine_for(settings.db_url)
        self.writer = DatabaseWriter(
            self.engine, settings.journal_dir, max_pending=settings.queue_max
        )
        # no ring buffer: the service never reads it, and 10,000 kept calls only grow the
        # heap that every full garbage collection scans (tens of ms of pause under load)
        self.sink = MetricsSink(capacity=0, writer=self.writer)
        self.status = ControlStatus()
        self.reloads: Counter[str] = Counter()
        self.refreshes: Counter[str] = Counter()
        self._rows: ControlRows | None = None
        self._problems: tuple[str, ...] = ()
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self._reload_now = threading.Event()
        self._manifest = settings.bundle / MANIFEST_NAME
        self._seen = _signature(self._manifest)
        self.refresh_control(apply=False)
        self.predictor = self._open()
        self._threads = [
            threading.Thread(target=self._refresh_loop, name="mixai-control", daemon=True),
            threading.Thread(target=self._watch_loop, name="mixai-bundle-watch", daemon=True),
        ]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        _freeze_heap()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the threads and write every queued row (to the database or the journal)."""
        self._stop.set()
        self._reload_now.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        self.writer.close()
        self.engine.dispose()

    def request_reload(self) -> None:
        """Re-read the bundle now (SIGHUP), even if it looks unchanged."""
        self._seen = None
        self._reload_now.set()

    # --- control -----------------------------------------------------------------------------

    def refresh_control(self, *, apply: bool = True) -> bool:
        """Read the control rows and swap them into the predictor; ``False`` if unreachable."""
        try:
            with self.engine.connect() as connection:
                if self.status.schema or self.status.read_at is None:
                    self.status.schema = tuple(schema_problems(self.engine))
                if self.status.schema:
                    raise RuntimeError("; ".join(self.status.schema))
                rows = read_control(connection)
        except (SQLAlchemyError, RuntimeError) as exc:
            message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            if self.status.error != message:
                logger.warning("cannot read the control from the database: %s", message)
            self.status.error = message
            self.refreshes["failed"] += 1
            return False
        self._rows = rows
        self.status.read_at, self.status.error = time.monotonic(), None
        self.refreshes["ok"] += 1
        self.writer.retry_now()
        if apply:
            with self._swap:
                self._apply(self.predictor)
        return True

    def _apply(self, predictor: Predictor) -> None:
        control = resolve_control(predictor.manifest, self._rows)
        if control != predictor.control:
            predictor.set_control(control)
        problems = control.problems + self._apply_ood_policies(predictor)
        if problems != self._problems:
            for problem in problems:
                logger.warning("control: %s; not served", problem)
            self._problems = problems

    def _apply_ood_policies(self, predictor: Predictor) -> tuple[str, ...]:
        """Each task's ``ml_task_settings`` policy over its bundle's (no row: the bundle's);
        ``MIXAI_OOD_POLICY`` still wins (:class:`~mixai_inference.guards.Guards`)."""
        settings = self._rows.ood_policies if self._rows else {}
        guards, problems = predictor.guards, []
        before = guards.policies
        for task in task_names():
            try:
                guards.set_policy(task, settings.get(task))
            except ValueError as exc:  # a database without the schema's check
                problems.append(f"ml_task_settings {task}: {exc}")
                guards.set_policy(task, None)
        if guards.policies != before:
            logger.info("out-of-distribution policies: %s", dict(guards.policies))
        return tuple(problems)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.settings.control_refresh_s):
            try:
                self.refresh_control()
            except Exception:  # never let the refresher die
                logger.exception("control refresh failed")

    # --- bundle ------------------------------------------------------------------------------

    def _open(self) -> Predictor:
        predictor = Predictor.from_bundle(
            self.settings.bundle, metrics_sink=self.sink, preload=False
        )
        self._apply(predictor)
        predictor.preload()
        return predictor

    def reload_bundle(self) -> bool:
        """Open the bundle anew; swap it in if it verifies, else keep the old one."""
        candidate = self._open()
        problems = bundle_problems(candidate)
        if problems:
            self.reloads["refused"] += 1
            logger.error("new bundle refused, the old one keeps serving: %s", "; ".join(problems))
            return False
        with self._swap:
            self._apply(candidate)  # the control may have changed while it was opening
            self.predictor = candidate
        # the old bundle was frozen with the rest: unfrozen, the collector can free it (a
        # request still on it keeps it until the next reload)
        gc.unfreeze()
        _freeze_heap()
        self.reloads["ok"] += 1
        manifest = candidate.manifest
        logger.info("bundle reloaded (created %s)", manifest.created_at if manifest else "?")
        return True

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            self._reload_now.wait(self.settings.bundle_poll_s)
            self._reload_now.clear()
            if self._stop.is_set():
                return
            signature = _signature(self._manifest)
            if signature is None or signature == self._seen:
                continue  # unchanged, or between the two renames of a bundle swap
            self._seen = signature
            try:
                self.reload_bundle()
            except Exception:
                self.reloads["refused"] += 1
                logger.exception("new bundle refused, the old one keeps serving")

    # --- readiness ---------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether to send traffic here, and why not."""
        reasons = []
        predictor = self.predictor
        if predictor.bundle_error:
            reasons.append(f"bundle unavailable: {predictor.bundle_error}")
        status = self.status
        if status.schema:
            reasons.append("database schema incomplete: " + "; ".join(status.schema))
        elif status.read_at is None:
            reasons.append(f"control never read from the database: {status.error}")
        else:
            age = time.monotonic() - status.read_at
            if age > 2 * self.settings.control_refresh_s + 5:
                reasons.append(f"control stale: last read {age:.0f} s ago ({status.error})")
        manifest = predictor.manifest
        detail = {
            "ready": not reasons,
            "reasons": reasons,
            "bundle": str(self.settings.bundle),
            "bundle_created_at": manifest.created_at if manifest else None,
            "control_age_s": None
            if status.read_at is None
            else round(time.monotonic() - status.read_at, 3),
            "database_writes": "ok" if self.writer.db_up is not False else self.writer.db_error,
        }
        return not reasons, detail


def bundle_problems(predictor: Predictor) -> list[str]:
    """Why a freshly opened bundle must not replace the served one (empty if it may)."""
    if predictor.bundle_error:
        return [predictor.bundle_error]
    routed = predictor.routed_versions()
    return [
        f"{key.task} {key.version}: {reason}"
        for key, reason in sorted(predictor.load_failures().items())
        if key.version in routed.get(key.task, set()) and reason != "not_in_bundle"
    ]
