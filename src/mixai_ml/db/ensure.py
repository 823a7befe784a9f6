"""Migration steps that bring a database towards :mod:`mixai_ml.db.schema`, never away from it.

:class:`EnsureTable` makes one table match its shape at a migration version
(:func:`mixai_ml.db.shapes.table_at`): it creates the table when it is missing; on a table that
exists already (made by the application, a bulk load or an older release) it adds the missing
columns, the table's key and its indexes. It never drops, retypes or rewrites anything: columns
the schema does not know stay as they are, with their data. :class:`DropIndex` retires an index
the schema no longer has; :class:`UpdateRows` rewrites values an older release wrote.

Each step works two ways from one description, with the same DDL text:

* :meth:`Step.plan` inspects a live database and lists the :class:`Change` s it needs;
  :func:`mixai_ml.db.migrations.apply_migrations` checks each against the data and runs it;
* :meth:`Step.script` renders statements that are idempotent by themselves, for teams that apply
  SQL with their own tool (:mod:`mixai_ml.db.sqlfiles`).

The key of a table (its primary key in the schema) becomes a primary key where the database can
add one (PostgreSQL, on a table without a primary key); otherwise a unique index
``uq_<table>_key`` on the same columns enforces it (SQLite cannot add a primary key to an
existing table, and an application's own surrogate key stays the primary key).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Index, Table, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from mixai_ml.db.collisions import advice, collisions
from mixai_ml.db.shapes import (
    LiveTable,
    introduced_by,
    key_columns,
    primary_key_name,
    table_at,
    unique_key_index_name,
)


class MigrationError(RuntimeError):
    """The data prevents a change (duplicate or NULL keys); the message says how to fix it."""


# --- changes: what one database needs ----------------------------------------------------------


class Change(ABC):
    """One change a database needs; :meth:`statements` is its DDL, without guards."""

    since: int
    """The first migration version that makes the element (0: any that ensures the table)."""

    @property
    @abstractmethod
    def table(self) -> str:
        """The table changed."""

    @abstractmethod
    def describe(self) -> str:
        """What the change does, for people."""

    @abstractmethod
    def statements(self, dialect: Dialect) -> list[str]:
        """The DDL, one statement per item."""

    def obstacle(self, connection: Connection) -> str | None:
        """Why the data prevents the change (with how to fix it), or ``None``."""
        return None


@dataclass(frozen=True)
class CreateMissingTable(Change):
    shaped: Table
    since: int

    @property
    def table(self) -> str:
        return self.shaped.name

    def describe(self) -> str:
        return f"{self.table}: create the table"

    def statements(self, dialect: Dialect) -> list[str]:
        return [_compile(CreateTable(self.shaped), dialect)] + [
            _compile(CreateIndex(index), dialect) for index in _indexes(self.shaped)
        ]


@dataclass(frozen=True)
class AddColumn(Change):
    shaped: Table
    name: str
    since: int

    @property
    def table(self) -> str:
        return self.shaped.name

    def describe(self) -> str:
        target = self.shaped.c[self.name]
        note = "" if _addable_as_declared(target) else " (NULL-able: existing rows have no value)"
        return f"{self.table}: add column {self.name}{note}"

    def statements(self, dialect: Dialect) -> list[str]:
        return [add_column_sql(self.shaped, self.shaped.c[self.name], dialect)]


@dataclass(frozen=True)
class AddKey(Change):
    shaped: Table
    as_primary_key: bool
    since: int

    @property
    def table(self) -> str:
        return self.shaped.name

    def describe(self) -> str:
        what = "primary key" if self.as_primary_key else f"unique index {self._index_name()}"
        return f"{self.table}: add the key ({', '.join(key_columns(self.shaped))}) as {what}"

    def _index_name(self) -> str:
        return unique_key_index_name(self.shaped)

    def statements(self, dialect: Dialect) -> list[str]:
        quote = dialect.identifier_preparer
        parts = _column_list(key_columns(self.shaped), dialect)
        name = quote.format_table(self.shaped)
        if self.as_primary_key:
            constraint = quote.quote(primary_key_name(self.shaped))
            return [f"ALTER TABLE {name} ADD CONSTRAINT {constraint} PRIMARY KEY ({parts})"]
        return [f"CREATE UNIQUE INDEX {quote.quote(self._index_name())} ON {name} ({parts})"]

    def obstacle(self, connection: Connection) -> str | None:
        return collisions(connection, self.table, key_columns(self.shaped), key=True)


@dataclass(frozen=True)
class CreateMissingIndex(Change):
    index: Index
    since: int

    @property
    def table(self) -> str:
        return str(self.index.table.name)  # type: ignore[union-attr]

    def describe(self) -> str:
        unique = "unique " if self.index.unique else ""
        return f"{self.table}: create {unique}index {self.index.name}"

    def statements(self, dialect: Dialect) -> list[str]:
        return [_compile(CreateIndex(self.index), dialect)]

    def obstacle(self, connection: Connection) -> str | None:
        if not self.index.unique:
            return None
        names = tuple(part.name for part in self.index.columns)
        return collisions(connection, self.table, names, key=False)


@dataclass(frozen=True)
class DropOldIndex(Change):
    table_name: str
    name: str
    since: int

    @property
    def table(self) -> str:
        return self.table_name

    def describe(self) -> str:
        return f"{self.table}: drop index {self.name}"

    def statements(self, dialect: Dialect) -> list[str]:
        return [f"DROP INDEX {dialect.identifier_preparer.quote(self.name)}"]


@dataclass(frozen=True)
class RewriteRows(Change):
    table_name: str
    sql: str
    reason: str
    since: int

    @property
    def table(self) -> str:
        return self.table_name

    def describe(self) -> str:
        return f"{self.table}: {self.reason}"

    def statements(self, dialect: Dialect) -> list[str]:
        return [self.sql]


# --- steps: what a migration does ---------------------------------------------------------------


class Step(ABC):
    """One step of a migration, on a live database or as SQL."""

    @abstractmethod
    def plan(self, connection: Connection, version: int) -> list[Change]:
        """The changes this database needs (empty when it is there already)."""

    @abstractmethod
    def script(self, dialect: Dialect, version: int) -> tuple[str, list[str]]:
        """A title and idempotent statements for ``dialect`` (see the module docstring)."""


@dataclass(frozen=True)
class EnsureTable(Step):
    """Make a table match its shape in the schema at the migration's version."""

    table: Table

    def plan(self, connection: Connection, version: int) -> list[Change]:
        shaped = table_at(self.table, version)
        live = LiveTable.read(connection, shaped.name)
        if live is None:
            return [CreateMissingTable(shaped, 0)]
        changes: list[Change] = [
            AddColumn(shaped, part.name, introduced_by(part))
            for part in shaped.columns
            if part.name not in live.columns
        ]
        key = key_columns(shaped)
        if key and not live.has_key(key):
            as_primary_key = connection.dialect.name == "postgresql" and not live.primary_key
            changes.append(AddKey(shaped, as_primary_key, 0))
        changes += [
            CreateMissingIndex(index, introduced_by(index))
            for index in _indexes(shaped)
            if index.name not in live.indexes
        ]
        return changes

    def script(self, dialect: Dialect, version: int) -> tuple[str, list[str]]:
        shaped = table_at(self.table, version)
        statements = [_compile(CreateTable(shaped, if_not_exists=True), dialect)]
        postgresql = dialect.name == "postgresql"
        for part in shaped.columns:
            if postgresql:
                statements.append(add_column_sql(shaped, part, dialect, if_not_exists=True))
            elif introduced_by(part) == version:
                # SQLite has no ADD COLUMN IF NOT EXISTS: applied again, this one fails with
                # "duplicate column name" and changes nothing.
                statements.append(add_column_sql(shaped, part, dialect))
        if postgresql and key_columns(shaped):
            statements.append(_pg_key_block(shaped, dialect))
        for index in _indexes(shaped):
            if postgresql and index.unique:
                statements.append(_pg_unique_index_guard(index, dialect))
            statements.append(_compile(CreateIndex(index, if_not_exists=True), dialect))
        return shaped.name, statements


@dataclass(frozen=True)
class DropIndex(Step):
    """Drop an index the schema no longer has (if the database has it)."""

    table_name: str
    name: str

    def plan(self, connection: Connection, version: int) -> list[Change]:
        live = LiveTable.read(connection, self.table_name)
        if live is None or self.name not in live.indexes:
            return []
        return [DropOldIndex(self.table_name, self.name, version)]

    def script(self, dialect: Dialect, version: int) -> tuple[str, list[str]]:
        name = dialect.identifier_preparer.quote(self.name)
        return f"{self.table_name}: drop {self.name}", [f"DROP INDEX IF EXISTS {name}"]


@dataclass(frozen=True)
class UpdateRows(Step):
    """Rewrite values that an older release wrote in another form.

    ``where`` selects exactly the rows still in the old form, so the ``UPDATE`` is idempotent
    and the plan is empty once it has run. Portable SQL without ``%`` only: it runs as is on
    both dialects and their drivers.
    """

    table_name: str
    assignments: str
    where: str
    reason: str

    @property
    def sql(self) -> str:
        return f"UPDATE {self.table_name} SET {self.assignments} WHERE {self.where}"

    def plan(self, connection: Connection, version: int) -> list[Change]:
        if not inspect(connection).has_table(self.table_name):
            return []
        count = f"SELECT count(*) FROM {self.table_name} WHERE {self.where}"
        if not connection.exec_driver_sql(count).scalar():
            return []
        return [RewriteRows(self.table_name, self.sql, self.reason, version)]

    def script(self, dialect: Dialect, version: int) -> tuple[str, list[str]]:
        return f"{self.table_name}: {self.reason}", [self.sql]


def ensure(*tables: Table) -> tuple[EnsureTable, ...]:
    """The steps that make each of ``tables`` match the schema: a migration's usual content."""
    return tuple(EnsureTable(part) for part in tables)


# --- rendering ----------------------------------------------------------------------------------


def _compile(element: CreateTable | CreateIndex, dialect: Dialect) -> str:
    return str(element.compile(dialect=dialect)).strip()


def _indexes(shaped: Table) -> list[Index]:
    return sorted(shaped.indexes, key=lambda index: str(index.name))


def _column_list(names: Sequence[str], dialect: Dialect) -> str:
    return ", ".join(dialect.identifier_preparer.quote(name) for name in names)


def _addable_as_declared(target: Column[object]) -> bool:
    """A NOT NULL column can be added to rows that exist only with a server default."""
    return bool(target.nullable) or target.server_default is not None


def add_column_sql(
    shaped: Table, target: Column[object], dialect: Dialect, *, if_not_exists: bool = False
) -> str:
    """``ALTER TABLE … ADD COLUMN`` for ``target``: NOT NULL only when it has a server default."""
    quote = dialect.identifier_preparer
    spec = [quote.format_column(target), target.type.compile(dialect=dialect)]
    if target.server_default is not None:
        compiler = dialect.ddl_compiler(dialect, None)  # type: ignore[arg-type]
        default = compiler.get_column_default_string(target)
        spec.append(f"DEFAULT {default}")
    if not target.nullable and _addable_as_declared(target):
        spec.append("NOT NULL")
    guard = "IF NOT EXISTS " if if_not_exists else ""
    return f"ALTER TABLE {quote.format_table(shaped)} ADD COLUMN {guard}{' '.join(spec)}"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pg_raise(headline: str, fix: str) -> str:
    return f"RAISE EXCEPTION {_sql_text(headline)} USING HINT = {_sql_text(fix)};"


def _pg_key_block(shaped: Table, dialect: Dialect) -> str:
    """A PostgreSQL block that adds the table's key unless some unique index enforces it."""
    quote = dialect.identifier_preparer
    name = quote.format_table(shaped)
    regclass = f"{_sql_text(name)}::regclass"
    names = key_columns(shaped)
    parts = _column_list(names, dialect)
    expected = ", ".join(_sql_text(part) for part in names)
    any_null = " OR ".join(f"{quote.quote(part)} IS NULL" for part in names)
    headline, fix = advice(shaped.name, names, key=True)
    unique_index, primary_key = (
        AddKey(shaped, as_primary_key, 0).statements(dialect)[0] for as_primary_key in (False, True)
    )
    return f"""DO $$
BEGIN
  -- done when the primary key or a unique index covers exactly the key's columns
  IF EXISTS (
    SELECT 1 FROM pg_index AS i
    WHERE i.indrelid = {regclass} AND i.indisunique AND i.indpred IS NULL
      AND ARRAY(
        SELECT a.attname::text
        FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        ORDER BY k.position
      ) = ARRAY[{expected}]::text[]
  ) THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM {name} WHERE {any_null})
     OR EXISTS (SELECT 1 FROM {name} GROUP BY {parts} HAVING count(*) > 1) THEN
    {_pg_raise(headline, fix)}
  END IF;
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {regclass} AND contype = 'p') THEN
    {unique_index};
  ELSE
    {primary_key};
  END IF;
END
$$"""


def _pg_unique_index_guard(index: Index, dialect: Dialect) -> str:
    """A PostgreSQL block that stops with advice when duplicates prevent a unique index."""
    quote = dialect.identifier_preparer
    name = quote.format_table(index.table)  # type: ignore[arg-type]
    names = [part.name for part in index.columns]
    parts = _column_list(names, dialect)
    not_null = " AND ".join(f"{quote.quote(part)} IS NOT NULL" for part in names)
    headline, fix = advice(str(index.table.name), names, key=False)  # type: ignore[union-attr]
    return f"""DO $$
BEGIN
  IF to_regclass({_sql_text(quote.quote(str(index.name)))}) IS NULL AND EXISTS (
    SELECT 1 FROM {name} WHERE {not_null} GROUP BY {parts} HAVING count(*) > 1
  ) THEN
    {_pg_raise(headline, fix)}
  END IF;
END
$$"""
