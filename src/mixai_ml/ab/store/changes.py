"""Applying changes to the stored sums: the users touched by new rows, upserts, caps, rebuilds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, text

from mixai_ml.ab.config import PRE_SUFFIX, AbSettings
from mixai_ml.ab.store.processes import CAP_COLUMNS, FOUND_CAPS, sums_in_processes
from mixai_ml.ab.store.sql import (
    ADDITIVE,
    ASSIGNMENT_SUMS_SQL,
    EARLIEST,
    EMPTIED,
    IN_WINDOW,
    TOUCHED_USERS,
    Delta,
    by_index_lookups,
    missing_caps,
    shaped,
    statement,
)
from mixai_ml.db.sqlite_shares import copy_rows, hold_write_lock, read_rows

logger = logging.getLogger(__name__)


# --- temporary tables --------------------------------------------------------------------------

_TOUCHED_TABLE = (
    "CREATE TEMPORARY TABLE ab_touched (experiment_id VARCHAR(64) NOT NULL, "
    "metric VARCHAR(64) NOT NULL, user_id VARCHAR(64) NOT NULL, "
    "PRIMARY KEY (experiment_id, metric, user_id)){suffix}"
)


def fresh_temporary(connection: Connection, name: str, definition: str, **params: Any) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
    connection.execute(statement(definition, **params))


def _columns(table: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return ADDITIVE[table]


def add_into(
    connection: Connection,
    table: str,
    select_sql: str,
    params: dict[str, Any],
    sign: str = "+",
) -> None:
    """Add (``sign="-"``: subtract) the rows of ``select_sql`` to ``table``'s sums (an upsert),
    then drop the rows left empty."""
    keys, sums = _columns(table)
    names = ", ".join((*keys, *sums))
    updates = ", ".join(f"{name} = {table}.{name} {sign} excluded.{name}" for name in sums)
    connection.execute(
        statement(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM ({select_sql}) change "
            f"WHERE 1 = 1 ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
            **params,
        )
    )
    if EMPTIED[table]:
        connection.execute(text(f"DELETE FROM {table} WHERE {EMPTIED[table]} = 0"))


def insert_into(
    connection: Connection, table: str, select_sql: str, params: dict[str, Any]
) -> None:
    """Insert the rows of ``select_sql`` (sums shaped like ``table``'s) into ``table``.

    PostgreSQL plans no parallel workers for ``INSERT … SELECT``, but may for ``CREATE TABLE
    … AS``: the rows go through a temporary table (the pre-period sums of a rebuild read by
    two workers: 32–36 s → 28–29 s at platform scale).
    """
    keys, sums = _columns(table)
    names = ", ".join((*keys, *sums))
    select = shaped(table, select_sql)
    if connection.dialect.name == "postgresql":
        fresh_temporary(
            connection, "ab_rebuilt", f"CREATE TEMPORARY TABLE ab_rebuilt AS {select}", **params
        )
        connection.execute(text(f"INSERT INTO {table} ({names}) SELECT {names} FROM ab_rebuilt"))
        connection.execute(text("DROP TABLE ab_rebuilt"))
    else:
        connection.execute(statement(f"INSERT INTO {table} ({names}) {select}", **params))


def touched_table(connection: Connection) -> None:
    """An empty ``ab_touched``; on SQLite clustered by its key (scanned in key order)."""
    suffix = " WITHOUT ROWID" if connection.dialect.name == "sqlite" else ""
    fresh_temporary(connection, "ab_touched", _TOUCHED_TABLE.format(suffix=suffix))


_TOUCHED_PRE = f"""
INSERT INTO ab_touched_pre (experiment_id, metric)
SELECT pairs.experiment_id, pairs.metric
FROM (SELECT DISTINCT experiment_id, metric FROM ab_touched) pairs
WHERE EXISTS (
  SELECT 1 FROM ab_test_metrics m
  WHERE m.experiment_id = pairs.experiment_id AND m.metric = pairs.metric || '{PRE_SUFFIX}'
)"""


def _fill_touched(connection: Connection, lo: datetime, hi: datetime) -> None:
    touched_table(connection)
    connection.execute(statement(TOUCHED_USERS.format(where=IN_WINDOW), lo=lo, hi=hi))
    note_covariates(connection)


def note_covariates(connection: Connection) -> None:
    """``ab_touched_pre``: the experiment × metric pairs of ``ab_touched`` with a covariate."""
    fresh_temporary(
        connection,
        "ab_touched_pre",
        "CREATE TEMPORARY TABLE ab_touched_pre (experiment_id VARCHAR(64) NOT NULL, "
        "metric VARCHAR(64) NOT NULL, PRIMARY KEY (experiment_id, metric))",
    )
    connection.execute(text(_TOUCHED_PRE))
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE ab_touched"))


_UNCAPPED_TOUCHED = """
SELECT DISTINCT experiment_id FROM ab_touched
WHERE metric = :metric
  AND experiment_id NOT IN (SELECT experiment_id FROM ab_metric_caps WHERE metric = :metric)"""


def _missing_caps(
    connection: Connection,
    settings: AbSettings,
    hi: datetime,
    experiment_ids: Sequence[str] | None,
    touched: bool,
) -> list[dict[str, Any]]:
    """The pre-period caps still missing that rows before ``hi`` fix (nothing is written).

    Args:
        touched: Consider the experiments of ``ab_touched``; else ``experiment_ids`` (all:
            ``None``).
    """
    found: list[dict[str, Any]] = []
    for metric, quantile in settings.pre_period_quantiles.items():
        ids = experiment_ids
        if touched:
            # usually none: the pre-period quantile is read only where a cap is missing
            ids = list(connection.execute(text(_UNCAPPED_TOUCHED), {"metric": metric}).scalars())
            if not ids:
                continue
        query = missing_caps(metric, quantile, hi, ids)
        found += [dict(row) for row in connection.execute(query).mappings()]
    return found


def _store_caps(connection: Connection, caps: list[dict[str, Any]], now: datetime) -> None:
    if not caps:
        return
    connection.execute(
        text(
            "INSERT INTO ab_metric_caps (experiment_id, metric, cap, pre_users, fixed_at) "
            "VALUES (:experiment_id, :metric, :cap, :pre_users, :fixed_at)"
        ).bindparams(bindparam("fixed_at", type_=DateTime(timezone=True))),
        [{**cap, "fixed_at": now} for cap in caps],
    )
    for metric in sorted({cap["metric"] for cap in caps}):
        fixed = sum(cap["metric"] == metric for cap in caps)
        logger.info("fixed the pre-period cap of %s in %d experiments", metric, fixed)


def rebuild(
    connection: Connection,
    delta: Delta,
    settings: AbSettings,
    hi: datetime,
    now: datetime,
    experiment_ids: Sequence[str] | None,
) -> None:
    """Recompute the stored sums of the experiments (all: ``None``) from rows before ``hi``.

    A full rebuild on a SQLite file may sum in worker processes (:mod:`.processes`); it takes
    the write lock first and writes nothing until they are done.
    """
    if connection.dialect.name == "sqlite":
        hold_write_lock(connection)
    with sums_in_processes(connection, delta, settings, hi, experiment_ids) as scratch:
        found = (
            [cap for path in scratch for cap in read_rows(path, FOUND_CAPS, CAP_COLUMNS)]
            if scratch
            else _missing_caps(connection, settings, hi, experiment_ids, touched=False)
        )
        where = "" if experiment_ids is None else "WHERE experiment_id IN :ids"
        for table in ADDITIVE:
            connection.execute(
                statement(f"DELETE FROM {table} {where}", ids=list(experiment_ids or []))
            )
        _store_caps(connection, found, now)
        params = delta.params(EARLIEST, hi, experiment_ids)
        for table, sql in delta.everything(experiment_ids):
            if sql is None:
                continue
            keys, sums = _columns(table)
            for path in scratch:
                copy_rows(connection, path, table, (*keys, *sums))
            if not scratch:
                insert_into(connection, table, sql, params)


def touch_window(
    connection: Connection,
    delta: Delta,
    settings: AbSettings,
    lo: datetime,
    hi: datetime,
    now: datetime,
) -> None:
    """Find the users with rows recorded in ``[lo, hi)`` (``ab_touched``) and fix the pre-period
    caps their rows complete, rebuilding the experiments whose stored sums lacked them."""
    _fill_touched(connection, lo, hi)
    found = _missing_caps(connection, settings, hi, None, touched=True)
    _store_caps(connection, found, now)
    recapped: set[str] = set()
    for metric in sorted({cap["metric"] for cap in found}):
        recapped |= set(
            connection.execute(
                statement(
                    "SELECT DISTINCT experiment_id FROM ab_metric_daily "
                    "WHERE metric = :metric AND experiment_id IN :ids",
                    metric=metric,
                    ids=[cap["experiment_id"] for cap in found if cap["metric"] == metric],
                )
            ).scalars()
        )
    if recapped:
        logger.info("rebuilding %d experiments whose pre-period cap was just fixed", len(recapped))
        rebuild(connection, delta, settings, lo, now, sorted(recapped))


def add_window(connection: Connection, delta: Delta, lo: datetime, hi: datetime) -> None:
    """Add the change that the touched users' rows recorded in ``[lo, hi)`` make to the sums."""
    params = delta.params(lo, hi, None)
    with by_index_lookups(connection):
        for table, sql in delta.window():
            add_into(connection, table, sql, params)
        assignments = ASSIGNMENT_SUMS_SQL.format(experiments="")
        add_into(connection, "ab_assignment_daily", assignments, params)
