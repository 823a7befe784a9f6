"""What is stored (``ab_statistics_state``) and the day counts that reveal late or deleted rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, DateTime, bindparam, text

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store.sql import statement
from mixai_ml.datasets.sql import utc_timestamp

STATE_NAME = "ab_analysis"
"""The row of ``ab_statistics_state`` this analysis keeps."""


# --- late rows --------------------------------------------------------------------------------

_ROWS_OF_DAY = (
    "SELECT COUNT(*) FROM ab_test_metrics WHERE recorded_at >= :lo AND recorded_at < :hi",
    "SELECT COUNT(*) FROM ab_test_assignments WHERE assigned_at >= :lo AND assigned_at < :hi",
)


def _checked_days(folded_before: datetime, settings: AbSettings) -> list[datetime]:
    days = settings.statistics.late_check_days
    return [folded_before - timedelta(days=k) for k in range(days, 0, -1)]


def _count_rows(connection: Connection, days: Iterable[datetime]) -> dict[str, tuple[int, ...]]:
    """Raw rows recorded (metrics) and assigned (assignments) on each day (index range counts)."""
    counts = {}
    for day in days:
        window = {"lo": day, "hi": day + timedelta(days=1)}
        counts[day.date().isoformat()] = tuple(
            int(connection.execute(statement(sql, **window)).scalar_one()) for sql in _ROWS_OF_DAY
        )
    return counts


def record_folded(connection: Connection, folded_before: datetime, settings: AbSettings) -> None:
    """Remember the row counts of the last folded days (what :func:`late_days` checks)."""
    counts = _count_rows(connection, _checked_days(folded_before, settings))
    connection.execute(text("DELETE FROM ab_folded_days"))
    if counts:
        connection.execute(
            text(
                "INSERT INTO ab_folded_days (day, metric_rows, assignment_rows) "
                "VALUES (:day, :metric_rows, :assignment_rows)"
            ),
            [{"day": d, "metric_rows": m, "assignment_rows": a} for d, (m, a) in counts.items()],
        )


def late_days(connection: Connection, folded_before: datetime, settings: AbSettings) -> list[str]:
    """Folded days whose raw row counts changed since they were folded (late or deleted rows)."""
    stored = {
        str(day): (int(m), int(a))
        for day, m, a in connection.execute(
            text("SELECT day, metric_rows, assignment_rows FROM ab_folded_days")
        )
    }
    now = _count_rows(
        connection,
        [d for d in _checked_days(folded_before, settings) if d.date().isoformat() in stored],
    )
    return [
        f"{day} ({now[day][0] - stored[day][0]:+d} metric rows, "
        f"{now[day][1] - stored[day][1]:+d} assignments)"
        for day in sorted(now)
        if now[day] != stored[day]
    ]


# --- the state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredState:
    folded_before: datetime
    definition: str


def read_state(connection: Connection) -> StoredState | None:
    lock = " FOR UPDATE" if connection.dialect.name == "postgresql" else ""
    row = connection.execute(
        text(f"SELECT folded_before, definition FROM ab_statistics_state WHERE name = :name{lock}"),
        {"name": STATE_NAME},
    ).first()
    if row is None:
        return None
    return StoredState(utc_timestamp(row[0]).to_pydatetime(), str(row[1]))


def write_state(
    connection: Connection, folded_before: datetime, definition: str, now: datetime, rebuilt: bool
) -> None:
    stamp = (
        bindparam("folded_before", type_=DateTime(timezone=True)),
        bindparam("now", type_=DateTime(timezone=True)),
    )
    updated = connection.execute(
        text(
            "UPDATE ab_statistics_state SET folded_before = :folded_before, "
            "definition = :definition, refreshed_at = :now"
            + (", rebuilt_at = :now" if rebuilt else "")
            + " WHERE name = :name"
        ).bindparams(*stamp),
        {"folded_before": folded_before, "definition": definition, "now": now, "name": STATE_NAME},
    )
    if updated.rowcount == 0:
        connection.execute(
            text(
                "INSERT INTO ab_statistics_state (name, folded_before, definition, refreshed_at, "
                "rebuilt_at) VALUES (:name, :folded_before, :definition, :now, :now)"
            ).bindparams(*stamp),
            {
                "folded_before": folded_before,
                "definition": definition,
                "now": now,
                "name": STATE_NAME,
            },
        )


def forget_day_counts(
    connection: Connection, user_ids: list[str], folded_before: datetime, settings: AbSettings
) -> None:
    """Take the users' rows out of the counts that detect late rows (they are being deleted)."""
    columns = {
        "metric_rows": ("ab_test_metrics", "recorded_at"),
        "assignment_rows": ("ab_test_assignments", "assigned_at"),
    }
    for column, (table, stamp) in columns.items():
        for day in _checked_days(folded_before, settings):
            gone = connection.execute(
                statement(
                    f"SELECT COUNT(*) FROM {table} WHERE user_id IN :ids "
                    f"AND {stamp} >= :lo AND {stamp} < :hi",
                    ids=user_ids,
                    lo=day,
                    hi=day + timedelta(days=1),
                )
            ).scalar_one()
            if gone:
                connection.execute(
                    text(f"UPDATE ab_folded_days SET {column} = {column} - :gone WHERE day = :day"),
                    {"gone": int(gone), "day": day.date().isoformat()},
                )
