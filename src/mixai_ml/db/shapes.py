"""A table as a migration version shapes it, and what a live database has of it.

Later columns, indexes and checks carry ``info={"added_in": N}`` in :mod:`mixai_ml.db.schema`;
:func:`table_at` drops what migrations after ``version`` add, so each migration sees the table
as it was then. :class:`LiveTable` reads what the database has, for the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    inspect,
)


def introduced_by(item: Column[object] | Index | CheckConstraint) -> int:
    """The migration that adds ``item`` to an existing table (0: part of the table's creation)."""
    return int(item.info.get("added_in", 0))


def table_at(source: Table, version: int) -> Table:
    """``source`` as migration ``version`` leaves it: without what later migrations add."""
    columns = []
    for original in source.columns:
        if introduced_by(original) <= version:
            copy = original._copy()
            copy.index = None  # indexes are copied below, with their names
            columns.append(copy)
    constraints: list[PrimaryKeyConstraint | CheckConstraint] = []
    if source.primary_key.name:
        constraints.append(
            PrimaryKeyConstraint(
                *source.primary_key.columns.keys(), name=str(source.primary_key.name)
            )
        )
    constraints += [
        CheckConstraint(constraint.sqltext, name=constraint.name, info=dict(constraint.info))
        for constraint in source._sorted_constraints  # declaration order: stable DDL
        if isinstance(constraint, CheckConstraint) and introduced_by(constraint) <= version
    ]
    shaped = Table(source.name, MetaData(), *columns, *constraints)
    for index in sorted(source.indexes, key=lambda index: str(index.name)):
        if introduced_by(index) <= version:
            Index(
                str(index.name),
                *(shaped.c[part.name] for part in index.columns),
                unique=index.unique,
                info=dict(index.info),
                **index.dialect_kwargs,
            )
    return shaped


def key_columns(shaped: Table) -> tuple[str, ...]:
    """The columns of the table's key (its primary key in the schema)."""
    return tuple(part.name for part in shaped.primary_key.columns)


def primary_key_name(shaped: Table) -> str:
    """The primary key's name (PostgreSQL's own default when the schema names none)."""
    return str(shaped.primary_key.name or f"{shaped.name}_pkey")


def unique_key_index_name(shaped: Table) -> str:
    """The unique index that enforces the key where a primary key cannot be added."""
    return f"uq_{shaped.name}_key"


@dataclass(frozen=True)
class LiveTable:
    """What a table in the database has, as far as the schema cares."""

    columns: frozenset[str]
    primary_key: tuple[str, ...]
    unique_keys: frozenset[tuple[str, ...]]
    indexes: frozenset[str]

    @classmethod
    def read(cls, connection: Connection, name: str) -> LiveTable | None:
        """The table ``name``, or ``None`` if the database has none."""
        inspector = inspect(connection)
        if not inspector.has_table(name):
            return None
        indexes = inspector.get_indexes(name)
        partial = {
            index["name"]
            for index in indexes
            if any(key.endswith("_where") for key in index.get("dialect_options", {}))
        }
        unique = {
            tuple(str(part) for part in index["column_names"])
            for index in indexes
            if index["unique"]
            and index["name"] not in partial
            and None not in index["column_names"]
        }
        unique |= {
            tuple(constraint["column_names"])
            for constraint in inspector.get_unique_constraints(name)
        }
        return cls(
            columns=frozenset(part["name"] for part in inspector.get_columns(name)),
            primary_key=tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            unique_keys=frozenset(unique),
            indexes=frozenset(str(index["name"]) for index in indexes),
        )

    def has_key(self, key: Sequence[str]) -> bool:
        """Whether ``key`` is enforced: as the primary key or by a unique index or constraint."""
        return self.primary_key == tuple(key) or tuple(key) in self.unique_keys
