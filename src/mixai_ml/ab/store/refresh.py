"""The entry points: :func:`refresh_statistics` (every run), :func:`forget_users` (the purge)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store.changes import (
    add_into,
    add_window,
    note_covariates,
    rebuild,
    touch_window,
    touched_table,
)
from mixai_ml.ab.store.read import AbStatistics, read_statistics
from mixai_ml.ab.store.sql import (
    ASSIGNMENT_SUMS_SQL,
    EARLIEST,
    LATEST,
    TOUCHED_USERS,
    Delta,
    prepare_connection,
    statement,
)
from mixai_ml.ab.store.state import (
    forget_day_counts,
    late_days,
    read_state,
    record_folded,
    write_state,
)

logger = logging.getLogger(__name__)


def _midnight(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def refresh_statistics(
    engine: Engine, settings: AbSettings, now: datetime | None = None
) -> AbStatistics:
    """Bring the stored sums up to ``today − lookback_days`` and read every experiment's sums.

    One transaction: fold the complete days not yet stored (or rebuild, see the module
    docstring), then add the open days inside a savepoint, read the sums and roll the open
    days back. Concurrent refreshes serialise on the state row.

    Args:
        engine: The application database (migrated).
        settings: The analysis settings (the metric definitions shape the sums).
        now: The current time (UTC); tests and benchmarks set it.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    horizon = _midnight(now) - timedelta(days=settings.statistics.lookback_days)
    delta = Delta(settings, engine.dialect.name)
    definition = settings.statistics_definition()
    with engine.begin() as connection:
        prepare_connection(connection)
        state = read_state(connection)
        if state is None or state.definition != definition or settings.statistics.rebuild:
            why = (
                "no stored statistics yet"
                if state is None
                else "requested"
                if state.definition == definition
                else "the metric definitions changed"
            )
            logger.info("rebuilding the A/B statistics from the raw rows (%s)", why)
            if state is not None and state.definition != definition:
                connection.execute(text("DELETE FROM ab_metric_caps"))
            rebuild(connection, delta, settings, horizon, now, None)
            folded, rebuilt = horizon, True
        elif late := late_days(connection, state.folded_before, settings):
            logger.warning(
                "A/B rows changed in days already stored: %s; rebuilding the sums from the raw "
                "rows (late rows are counted, never dropped)",
                ", ".join(late),
            )
            rebuild(connection, delta, settings, horizon, now, None)
            folded, rebuilt = horizon, True
        else:
            folded, rebuilt = state.folded_before, False
            if horizon > folded:
                logger.info(
                    "folding A/B rows recorded from %s to %s", folded.date(), horizon.date()
                )
                touch_window(connection, delta, settings, folded, horizon, now)
                add_window(connection, delta, folded, horizon)
                folded = horizon
        if rebuilt or state is None or folded != state.folded_before:
            record_folded(connection, folded, settings)
        write_state(connection, folded, definition, now, rebuilt)
        touch_window(connection, delta, settings, folded, LATEST, now)
        open_days = connection.begin_nested()  # the open days' rows: added, read, taken out
        add_window(connection, delta, folded, LATEST)
        statistics = read_statistics(connection, settings, folded)
        open_days.rollback()
        for name in ("ab_touched", "ab_touched_pre"):
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
    return statistics


def forget_users(connection: Connection, user_ids: Sequence[str], settings: AbSettings) -> None:
    """Subtract users' contributions from the stored sums, before their rows are deleted.

    Call it in the transaction that deletes their ``ab_test_metrics`` and
    ``ab_test_assignments`` rows (the purge), so that the sums never count a deleted user.
    Without stored statistics it does nothing.
    """
    state = read_state(connection)
    if state is None or not user_ids:
        return
    prepare_connection(connection)
    delta = Delta(settings, connection.dialect.name)
    hi = state.folded_before
    for start in range(0, len(user_ids), 500):
        chunk = list(user_ids[start : start + 500])
        touched_table(connection)
        connection.execute(statement(TOUCHED_USERS.format(where="user_id IN :ids"), ids=chunk))
        note_covariates(connection)
        params = delta.params(EARLIEST, hi, None)
        for table, sql in delta.window():
            add_into(connection, table, sql, params, sign="-")
        add_into(
            connection,
            "ab_assignment_daily",
            ASSIGNMENT_SUMS_SQL.format(experiments="AND user_id IN :ids"),
            {"lo": EARLIEST, "hi": hi, "ids": chunk},
            sign="-",
        )
        forget_day_counts(connection, chunk, state.folded_before, settings)
    for name in ("ab_touched", "ab_touched_pre"):
        connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
