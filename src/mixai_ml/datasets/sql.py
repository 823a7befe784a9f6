"""Kedro datasets over the application database.

They extend kedro-datasets' SQL datasets with what this project needs: the
schema is migrated on first use, timestamps come back as UTC-aware values on
SQLite and PostgreSQL alike, and saving can replace or upsert rows without
dropping the migrated table (pandas' ``if_exists="replace"`` would lose its keys
and constraints).
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError
from kedro_datasets.pandas import SQLQueryDataset, SQLTableDataset
from sqlalchemy import Column, Connection, DateTime, Engine, bindparam, delete, func, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ColumnElement

from mixai_ml.db import schema
from mixai_ml.db.engine import database_url, get_engine

WriteMode = Literal["append", "replace_rows", "upsert"]
_WRITE_MODES = ("append", "replace_rows", "upsert")
# Upserts delete matching keys in chunks, well under SQLite's bound-parameter limit.
_KEY_CHUNK = 400


def to_utc(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return ``frame`` with ``columns`` as timezone-aware UTC timestamps."""
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def utc_timestamp(value: Any) -> pd.Timestamp:
    """``value`` as a UTC timestamp; a naive one is taken to be UTC already."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def app_database_url(credentials: dict[str, Any], filepath: str | None) -> str:
    """The database of ``credentials["con"]``, else the SQLite file ``filepath``.

    The catalog gives ``filepath`` (``globals.yml``'s ``database_file``, made absolute
    by Kedro), so that the default database is the project's wherever Kedro runs from.
    """
    con = credentials.get("con")
    if not con and filepath:
        con = f"sqlite:///{filepath}"
    return database_url(con)


def _timestamp_columns(table_name: str) -> list[str]:
    table = schema.metadata.tables.get(table_name)
    if table is None:
        return []
    return [column.name for column in table.columns if isinstance(column.type, DateTime)]


class AppTableDataset(SQLTableDataset):
    """A table of the application database (see :mod:`mixai_ml.db.schema`).

    Args:
        table_name: A table defined in the schema.
        credentials: ``{"con": url}``; the URL goes through
            :func:`mixai_ml.db.engine.database_url`.
        filepath: The SQLite file to use when ``credentials`` name no database.
        write_mode: ``append`` adds rows; ``replace_rows`` deletes every row and
            inserts the new ones in one transaction; ``upsert`` replaces the rows
            whose primary key is in the new data.
        load_args, save_args, metadata: as for ``pandas.SQLTableDataset``.
    """

    def __init__(
        self,
        *,
        table_name: str,
        credentials: dict[str, Any],
        write_mode: WriteMode = "append",
        filepath: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if table_name not in schema.metadata.tables:
            known = ", ".join(sorted(schema.metadata.tables))
            raise DatasetError(f"unknown table {table_name!r}; the schema defines: {known}")
        if write_mode not in _WRITE_MODES:
            raise DatasetError(f"write_mode must be one of {_WRITE_MODES}, got {write_mode!r}")
        credentials = {**credentials, "con": app_database_url(credentials, filepath)}
        super().__init__(
            table_name=table_name,
            credentials=credentials,
            load_args=load_args,
            save_args={**(save_args or {}), "if_exists": "append", "chunksize": 5000},
            metadata=metadata,
        )
        self._write_mode: WriteMode = write_mode
        self._table = schema.metadata.tables[table_name]

    @property
    def engine(self) -> Engine:
        return get_engine(self._connection_str)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "write_mode": self._write_mode}

    def load(self) -> pd.DataFrame:
        frame = pd.read_sql_table(con=self.engine, **self._load_args)
        return to_utc(frame, _timestamp_columns(self._table.name))

    def save(self, data: pd.DataFrame) -> None:
        unknown = sorted(set(data.columns) - set(self._table.columns.keys()))
        if unknown:
            raise DatasetError(f"table {self._table.name!r} has no columns {unknown}")
        with self.engine.begin() as connection:
            if self._write_mode == "replace_rows":
                connection.execute(delete(self._table))
            elif self._write_mode == "upsert":
                self._delete_keys(connection, data)
            if len(data):
                data.to_sql(con=connection, **self._save_args)

    def _delete_keys(self, connection: Connection, data: pd.DataFrame) -> None:
        key_columns = [column.name for column in self._table.primary_key.columns]
        if not key_columns:
            raise DatasetError(f"table {self._table.name!r} has no primary key to upsert on")
        missing = [name for name in key_columns if name not in data]
        if missing:
            raise DatasetError(f"upsert into {self._table.name!r} needs key columns {missing}")
        keys = list(data[key_columns].drop_duplicates().itertuples(index=False, name=None))
        columns = [self._table.c[name] for name in key_columns]
        if connection.dialect.name == "postgresql":
            self._delete_listed(connection, columns, keys)
            return
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            condition: ColumnElement[bool]
            if len(columns) == 1:
                condition = columns[0].in_([key[0] for key in chunk])
            else:  # row values: SQLite since 3.15, 7× faster there than an OR of ANDs
                condition = tuple_(*columns).in_(chunk)
            connection.execute(delete(self._table).where(condition))

    def _delete_listed(
        self, connection: Connection, columns: list[Column[Any]], keys: list[tuple[Any, ...]]
    ) -> None:
        """PostgreSQL: one ``DELETE … USING unnest(arrays)``, a join on the key, whatever its
        number of columns. It expands row values (``IN``) into an ``OR`` per key, tested on every
        row: a save took time growing with the table × the keys (16,000 keys: 4.6 s against
        0.09 s)."""
        arrays = (
            bindparam(f"key_{column.name}", [key[i] for key in keys], type_=ARRAY(column.type))
            for i, column in enumerate(columns)
        )
        names = [column.name for column in columns]
        listed = func.unnest(*arrays).table_valued(*names).render_derived(name="listed")
        connection.execute(delete(self._table).where(*(c == listed.c[c.name] for c in columns)))


class AppQueryDataset(SQLQueryDataset):
    """A read-only SQL query on the application database, migrated on first use.

    Args:
        sql: The query. Aggregations belong here, so that large tables are
            reduced in the database rather than loaded into pandas.
        credentials, filepath: The database, as for :class:`AppTableDataset`.
        timestamp_columns: Result columns to return as UTC-aware timestamps.
    """

    def __init__(
        self,
        *,
        sql: str,
        credentials: dict[str, Any],
        filepath: str | None = None,
        timestamp_columns: list[str] | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        credentials = {**credentials, "con": app_database_url(credentials, filepath)}
        super().__init__(sql=sql, credentials=credentials, load_args=load_args, metadata=metadata)
        self._timestamp_columns = list(timestamp_columns or [])

    @property
    def engine(self) -> Engine:
        return get_engine(self._connection_str)

    def load(self) -> pd.DataFrame:
        return to_utc(super().load(), self._timestamp_columns)


class DatabaseDataset(AbstractDataset[object, Engine]):
    """The migrated database itself, for nodes that change rows transactionally.

    Loading gives a SQLAlchemy ``Engine`` (the database as for :class:`AppTableDataset`).
    Used where a table-shaped read or
    write does not fit: the purge (deletes with an audit trail in one
    transaction) and registry updates.
    """

    def __init__(
        self,
        *,
        credentials: dict[str, Any],
        filepath: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._url = app_database_url(credentials, filepath)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"url": make_url(self._url).render_as_string(hide_password=True)}

    def load(self) -> Engine:
        return get_engine(self._url)

    def save(self, data: object) -> None:
        raise DatasetError("DatabaseDataset is read-only: nodes change rows through the engine")
