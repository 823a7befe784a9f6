"""The purge's places in the database: every table whose rows name a withdrawn user or job.

A place deletes the rows :class:`~mixai_ml.privacy.targets.PurgeTargets` selects, inside the
purge's transaction, and says how many rows each user lost (``DELETE … RETURNING``, so that
the counts are exactly what this transaction deleted, even with another purge running).
Adding a table is one entry in :data:`TABLE_PLACES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from mixai_ml.datasets.sql import to_utc
from mixai_ml.db import schema
from mixai_ml.privacy.targets import PurgeTargets, count_per_user

CHUNK = 500
"""Ids per statement: well under SQLite's limit of bound parameters."""


class TablePlace(Protocol):
    """A place in the database that holds users' data."""

    @property
    def name(self) -> str:
        """The place's name in ``purge_audit.table_name``."""
        ...

    def purge(self, connection: Connection, targets: PurgeTargets) -> pd.Series:
        """Remove the targets' data; return the rows removed per user."""
        ...


def chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


def rows_where_in(
    connection: Connection,
    columns: Sequence[ColumnElement[Any]],
    key: ColumnElement[Any],
    values: Sequence[str],
) -> pd.DataFrame:
    """``columns`` of the rows whose ``key`` is one of ``values`` (read in chunks)."""
    names = [str(column.key) for column in columns]
    frames = [
        pd.read_sql_query(select(*columns).where(key.in_(chunk)), connection)
        for chunk in chunks(values)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)


@dataclass(frozen=True)
class TableRows:
    """Deletes the targets' rows of a table with a ``job_id`` and/or a ``user_id`` column."""

    table: Table

    @property
    def name(self) -> str:
        return self.table.name

    def purge(self, connection: Connection, targets: PurgeTargets) -> pd.Series:
        return count_per_user(targets.owners(self.delete(connection, targets)))

    def delete(
        self, connection: Connection, targets: PurgeTargets, also: Sequence[str] = ()
    ) -> pd.DataFrame:
        """Delete the rows; return their ``job_id``/``user_id`` and the ``also`` columns."""
        columns = self.table.c
        keys = [name for name in ("job_id", "user_id") if name in columns]
        if not keys:
            raise ValueError(f"{self.table.name} has neither job_id nor user_id: not a place")
        returned = [columns[name] for name in (*keys, *also)]
        conditions: list[ColumnElement[bool]] = []
        if "job_id" in columns:
            conditions += [columns.job_id.in_(chunk) for chunk in chunks(sorted(targets.jobs))]
        if "user_id" in columns:
            for chunk in chunks(sorted(targets.users)):
                condition: ColumnElement[bool] = columns.user_id.in_(chunk)
                held = targets.held_jobs_of(chunk) if "job_id" in columns else []
                if held:
                    kept = or_(columns.job_id.is_(None), columns.job_id.not_in(held))
                    condition = and_(condition, kept)
                conditions.append(condition)
        frames = [
            pd.DataFrame(
                connection.execute(delete(self.table).where(where).returning(*returned)).all(),
                columns=[column.name for column in returned],
            )
            for where in conditions
        ]
        frames = [frame for frame in frames if len(frame)]
        if not frames:
            return pd.DataFrame(columns=[column.name for column in returned])
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class AbAssignmentRows(TableRows):
    """``ab_test_assignments``: deletes the rows and keeps their number, without user ids.

    The sample-ratio check compares the experiment's original allocation with its weights
    (docs/ab_testing.md), so each deleted assignment made before its user withdrew is counted
    in ``ab_purged_assignments`` (experiment × variant × UTC day of ``assigned_at``). One made
    after the withdrawal is not: the service routes a withdrawn user again and re-records the
    assignment the purge already counted, which must not count twice.
    """

    table: Table = schema.ab_test_assignments

    def purge(self, connection: Connection, targets: PurgeTargets) -> pd.Series:
        deleted = self.delete(connection, targets, also=("experiment_id", "variant", "assigned_at"))
        add_purged_assignments(connection, original_allocation(deleted, targets.withdrawals))
        return count_per_user(deleted["user_id"])


def original_allocation(deleted: pd.DataFrame, withdrawals: pd.DataFrame) -> pd.DataFrame:
    """Deleted assignments made before their user withdrew, per experiment × variant × day."""
    keys = ["experiment_id", "variant", "assigned_day"]
    if deleted.empty:
        return pd.DataFrame(columns=[*keys, "n_purged"])
    rows = to_utc(deleted, ["assigned_at"]).merge(withdrawals, on="user_id", how="inner")
    rows = rows[rows["assigned_at"] < rows["withdrawn_at"]]
    rows = rows.assign(assigned_day=rows["assigned_at"].dt.strftime("%Y-%m-%d"))
    return rows.groupby(keys, as_index=False).size().rename(columns={"size": "n_purged"})


def add_purged_assignments(connection: Connection, counts: pd.DataFrame) -> None:
    """Add ``counts`` (experiment × variant × day → ``n_purged``) to the stored ones."""
    table = schema.ab_purged_assignments
    for row in counts.itertuples(index=False):
        key = and_(
            table.c.experiment_id == str(row.experiment_id),
            table.c.variant == str(row.variant),
            table.c.assigned_day == str(row.assigned_day),
        )
        added = connection.execute(
            update(table).where(key).values(n_purged=table.c.n_purged + int(row.n_purged))
        )
        if added.rowcount == 0:
            connection.execute(
                insert(table).values(
                    experiment_id=row.experiment_id,
                    variant=row.variant,
                    assigned_day=row.assigned_day,
                    n_purged=int(row.n_purged),
                )
            )


TABLE_PLACES: tuple[TablePlace, ...] = (
    TableRows(schema.features_store),
    TableRows(schema.feature_failures),
    TableRows(schema.labels),
    TableRows(schema.model_metrics),
    AbAssignmentRows(),
    TableRows(schema.ab_test_metrics),
)
"""Every table that holds users' data, in the order the purge cleans them (one transaction)."""
