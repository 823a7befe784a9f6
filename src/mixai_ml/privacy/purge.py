"""The purge: remove withdrawn users' data from every place, and record that it did.

A run (docs/privacy.md):

1. records itself in ``purge_runs`` as ``running`` (and marks ``failed`` the runs still
   ``running`` after ``abandoned_after``: their process died);
2. in one database transaction, which a second purge waits for (SQLite's write lock, a
   PostgreSQL advisory lock), reads who withdrew (:class:`~mixai_ml.privacy.targets.PurgeTargets`),
   deletes their rows from every table place (:data:`~mixai_ml.privacy.tables.TABLE_PLACES`)
   and appends the ``purge_audit`` rows;
3. cleans every file place (:mod:`mixai_ml.privacy.files`) and appends its audit rows;
4. records each withdrawal it completed in ``purge_withdrawals`` (the 24-hour promise,
   measured) and ends ``succeeded``.

A failure ends the run ``failed`` with the error and leaves the withdrawals pending; the next
run does everything again, and every step is idempotent. Nothing here logs a user id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert, update

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store import forget_users
from mixai_ml.datasets.sql import to_utc
from mixai_ml.db import schema
from mixai_ml.db.migrations import exclusive_transaction
from mixai_ml.privacy.files import FilePlace
from mixai_ml.privacy.status import recorded_mask
from mixai_ml.privacy.tables import TABLE_PLACES, TablePlace, rows_where_in
from mixai_ml.privacy.targets import PurgeTargets, read_withdrawn

logger = logging.getLogger(__name__)

AUDIT_COLUMNS = ["purge_id", "purged_at", "user_id", "table_name", "rows_deleted"]
FILE_PREFIX = "file:"
"""``purge_audit.table_name`` of a file place: ``file:<place>``."""
_PURGE_LOCK = 0x6D69786169_7067  # any constant: purges take turns on PostgreSQL

Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PurgeResult:
    """What one run did."""

    purge_id: str
    started_at: datetime
    finished_at: datetime
    audit: pd.DataFrame
    """The ``purge_audit`` rows it wrote (one per user × place with rows removed)."""
    withdrawals_completed: int
    """Withdrawals completed for the first time by this run."""
    withdrawals_held: int
    """Withdrawn users under a user-level legal hold (kept)."""
    places: tuple[str, ...] = field(default=())
    """Every place cleaned, in order."""

    @property
    def rows_deleted(self) -> int:
        return int(self.audit["rows_deleted"].sum()) if len(self.audit) else 0

    def summary(self) -> dict[str, Any]:
        """Per place the users and rows removed: JSON-ready, without a user id."""
        per_place = self.audit.groupby("table_name")["rows_deleted"].agg(["count", "sum"])
        return {
            "purge_id": self.purge_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "withdrawals_completed": self.withdrawals_completed,
            "withdrawals_held": self.withdrawals_held,
            "rows_deleted": self.rows_deleted,
            "places": {
                name: {
                    "users": int(per_place["count"].get(name, 0)),
                    "rows": int(per_place["sum"].get(name, 0)),
                }
                for name in self.places
            },
        }


def read_targets(connection: Connection) -> PurgeTargets:
    """The withdrawn users, their jobs and the legal holds, as the app's tables say now."""
    consent, holds = read_withdrawn(connection)
    jobs_table = schema.jobs
    users = sorted(consent["user_id"].astype(str))
    jobs = rows_where_in(
        connection, (jobs_table.c.job_id, jobs_table.c.user_id), jobs_table.c.user_id, users
    )
    return PurgeTargets.from_tables(jobs, consent, holds)


def _audit_rows(
    purge_id: str, place: str, per_user: pd.Series, purged_at: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "purge_id": purge_id,
            "purged_at": purged_at,
            "user_id": str(user),
            "table_name": place,
            "rows_deleted": int(count),
        }
        for user, count in per_user.items()
        if count > 0
    ]


def _append(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(schema.purge_audit), rows)


def _start_run(engine: Engine, purge_id: str, now: datetime, abandoned_after: pd.Timedelta) -> None:
    runs = schema.purge_runs
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.status == "running", runs.c.started_at < now - abandoned_after)
            .values(status="failed", finished_at=now, error="abandoned: the run never finished")
        )
        connection.execute(insert(runs).values(purge_id=purge_id, started_at=now, status="running"))


def _finish_run(engine: Engine, purge_id: str, now: datetime, **values: Any) -> None:
    runs = schema.purge_runs
    with engine.begin() as connection:
        connection.execute(
            update(runs).where(runs.c.purge_id == purge_id).values(finished_at=now, **values)
        )


def _complete_withdrawals(
    connection: Connection, targets: PurgeTargets, purge_id: str, now: datetime
) -> int:
    """Record the withdrawals not recorded yet as completed by this run; how many."""
    table = schema.purge_withdrawals
    recorded = rows_where_in(
        connection,
        (table.c.user_id, table.c.withdrawn_at),
        table.c.user_id,
        sorted(targets.users),
    )
    recorded = to_utc(recorded, ["withdrawn_at"]).astype({"user_id": str})
    new = targets.withdrawals[~recorded_mask(targets.withdrawals, recorded)]
    rows = [
        {
            "user_id": row.user_id,
            "withdrawn_at": row.withdrawn_at.to_pydatetime(),
            "purged_at": now,
            "purge_id": purge_id,
        }
        for row in new.itertuples(index=False)
    ]
    if rows:
        connection.execute(insert(table), rows)
    return len(rows)


class PurgeIncomplete(RuntimeError):
    """Some file places could not be cleaned; the others were, and the next run retries."""


def _purge_files(
    engine: Engine,
    file_places: Sequence[FilePlace],
    targets: PurgeTargets,
    purge_id: str,
    clock: Clock,
) -> list[dict[str, Any]]:
    """Clean every file place, each audited as soon as it is done; one that fails does not
    keep the others from being cleaned, and the run fails after them all."""
    audit: list[dict[str, Any]] = []
    failures: list[str] = []
    for file_place in file_places:
        name = f"{FILE_PREFIX}{file_place.name}"
        try:
            rows = _audit_rows(purge_id, name, file_place.purge(targets), clock())
        except Exception as error:
            logger.exception("purge %s: %s could not be cleaned", purge_id, name)
            failures.append(f"{name}: {type(error).__name__}: {error}")
            continue
        with engine.begin() as connection:
            _append(connection, rows)
        audit += rows
    if failures:
        raise PurgeIncomplete("; ".join(failures))
    return audit


def purge_withdrawn_users(
    engine: Engine,
    file_places: Sequence[FilePlace] = (),
    *,
    purge_id: str,
    abandoned_after: pd.Timedelta,
    table_places: Sequence[TablePlace] = TABLE_PLACES,
    ab_settings: AbSettings | None = None,
    clock: Clock = _wall_clock,
) -> PurgeResult:
    """Remove withdrawn users' data from every table and file place; record the run.

    Args:
        engine: The application database.
        file_places: The places in files (the catalog's ``personal_data_files``).
        purge_id: This run's id (``purge_runs``, ``purge_audit``).
        abandoned_after: A run still ``running`` this long after it started is marked
            ``failed`` (``purge.abandoned_after`` in ``conf/base/parameters_purge.yml``).
        table_places: The places in the database.
        ab_settings: The A/B analysis settings: the users' contributions are subtracted from
            the stored A/B sums before their rows go (``None``: no stored sums to keep right).
        clock: The current UTC time (tests pass their own).

    Raises:
        PurgeIncomplete: If file places failed (the others are cleaned and audited).
        Whatever stopped a table place (their transaction is rolled back). Either way the run
        is recorded ``failed`` with the error and its withdrawals stay pending.
    """
    started_at = clock()
    _start_run(engine, purge_id, started_at, abandoned_after)
    audit: list[dict[str, Any]] = []
    try:
        with exclusive_transaction(engine, _PURGE_LOCK) as connection:
            targets = read_targets(connection)
            if ab_settings is not None:
                forget_users(connection, sorted(targets.users), ab_settings)
            for table_place in table_places:
                rows = _audit_rows(
                    purge_id, table_place.name, table_place.purge(connection, targets), clock()
                )
                _append(connection, rows)
                audit += rows
        audit += _purge_files(engine, file_places, targets, purge_id, clock)
        finished_at = clock()
        with engine.begin() as connection:
            completed = _complete_withdrawals(connection, targets, purge_id, finished_at)
        frame = pd.DataFrame(audit, columns=AUDIT_COLUMNS)
        _finish_run(
            engine,
            purge_id,
            finished_at,
            status="succeeded",
            withdrawals_completed=completed,
            rows_deleted=int(frame["rows_deleted"].sum()),
        )
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        _finish_run(engine, purge_id, clock(), status="failed", error=message)
        raise
    result = PurgeResult(
        purge_id=purge_id,
        started_at=started_at,
        finished_at=finished_at,
        audit=frame,
        withdrawals_completed=completed,
        withdrawals_held=len(targets.held_users),
        places=(
            *(place.name for place in table_places),
            *(f"{FILE_PREFIX}{place.name}" for place in file_places),
        ),
    )
    logger.info(
        "purge %s: %d withdrawn users (%d under a legal hold), %d withdrawals completed now, "
        "%d rows removed from %d places",
        purge_id,
        len(targets.users) + len(targets.held_users),
        len(targets.held_users),
        completed,
        result.rows_deleted,
        len(result.places),
    )
    return result
