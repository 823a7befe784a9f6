"""The application database as the service sees it: SQLAlchemy Core on the contract's tables.

The service never creates or migrates a table (``mixai-db upgrade`` does, CONTRACTS §4): it
reads the run-time control (``ml_feature_flags``, ``model_registry``, ``ab_experiments``,
``ml_task_settings``) and inserts ``model_metrics`` and ``ab_test_assignments`` rows, declaring
here only the columns it uses. :func:`schema_problems` says what is missing, for ``/readyz``.

Inserts are idempotent (:func:`insert_missing`): ``INSERT … ON CONFLICT DO NOTHING`` on
SQLite and PostgreSQL alike, on ``model_metrics``' unique (``task``, ``request_id``) and
``ab_test_assignments``' key (``experiment_id``, ``user_id``); a row sent twice (a replayed
journal, a commit whose answer was lost) is stored once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url

from mixai_inference.control import ControlRows, ExperimentRow, RegistryRow

metadata = MetaData()


def _utc() -> DateTime:
    return DateTime(timezone=True)


model_metrics = Table(
    "model_metrics",
    metadata,
    Column("recorded_at", _utc()),
    Column("task", String(32)),
    Column("model_version", String(64)),
    Column("variant", String(64)),
    Column("source", String(8)),
    Column("latency_ms", Float),
    Column("ok", Boolean),
    Column("error", Text),
    Column("user_id", String(64)),
    Column("job_id", String(64)),
    Column("prediction", Text),
    Column("request_id", String(64)),
    Column("experiment_id", String(64)),
    Column("ood_score", Float),
    Column("ood", Boolean),
    Column("input_sketch", Text),
)
ab_test_assignments = Table(
    "ab_test_assignments",
    metadata,
    Column("experiment_id", String(64)),
    Column("user_id", String(64)),
    Column("variant", String(64)),
    Column("assigned_at", _utc()),
)
ml_feature_flags = Table(
    "ml_feature_flags", metadata, Column("flag", String(64)), Column("enabled", Boolean)
)
model_registry = Table(
    "model_registry",
    metadata,
    Column("task", String(32)),
    Column("version", String(64)),
    Column("status", String(16)),
    Column("rollout_pct", Float),
    Column("created_at", _utc()),
    Column("promoted_at", _utc()),
)
ab_experiments = Table(
    "ab_experiments",
    metadata,
    Column("experiment_id", String(64)),
    Column("task", String(32)),
    Column("variants", Text),
    Column("weights", Text),
    Column("coverage", Float),
    Column("status", String(16)),
)
ml_task_settings = Table(
    "ml_task_settings", metadata, Column("task", String(32)), Column("ood_policy", String(16))
)

WRITTEN: Final = {"model_metrics": model_metrics, "ab_test_assignments": ab_test_assignments}
"""The tables the service inserts into, by name (the journal's ``table`` field)."""

UNIQUE_KEYS: Final = {
    "model_metrics": ("task", "request_id"),
    "ab_test_assignments": ("experiment_id", "user_id"),
}
"""The key each written table must enforce for inserts to be idempotent."""

TIMESTAMPS: Final = {"model_metrics": "recorded_at", "ab_test_assignments": "assigned_at"}


def engine_for(url: str) -> Engine:
    """An engine for ``MIXAI_DB_URL``: ``postgresql://`` uses psycopg 3, connections fail
    fast (3 s) and are checked before use, so an outage is noticed and survived."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3}
        )
    # SQLite: wait for the pipelines' write locks rather than fail at once
    return create_engine(parsed, pool_pre_ping=True, connect_args={"timeout": 5})


def schema_problems(engine: Engine) -> list[str]:
    """What the database lacks for the service (empty when ready).

    Raises:
        sqlalchemy.exc.OperationalError: If the database cannot be reached.
    """
    inspector = inspect(engine)
    problems = []
    tables = set(inspector.get_table_names())
    for table in metadata.tables.values():
        if table.name not in tables:
            problems.append(f"table {table.name} is missing")
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in present]
        if missing:
            problems.append(f"{table.name} lacks columns {missing}")
    for name, key in UNIQUE_KEYS.items():
        if name not in tables:
            continue
        keys = [set(i["column_names"]) for i in inspector.get_indexes(name) if i["unique"]]
        keys += [set(c["column_names"]) for c in inspector.get_unique_constraints(name)]
        keys.append(set(inspector.get_pk_constraint(name).get("constrained_columns") or ()))
        if set(key) not in keys:
            problems.append(f"{name} has no unique key on {key}")
    if problems:
        problems.append("run `mixai-db upgrade` on this database")
    return problems


def read_control(connection: Connection) -> ControlRows:
    """The control rows of the database (one consistent read)."""
    flags = {
        str(flag): bool(enabled)
        for flag, enabled in connection.execute(
            select(ml_feature_flags.c.flag, ml_feature_flags.c.enabled)
        )
    }
    models = [
        RegistryRow(
            str(row.task),
            str(row.version),
            str(row.status),
            float(row.rollout_pct or 0.0),
            _sortable(row.created_at),
            _sortable(row.promoted_at),
        )
        for row in connection.execute(select(model_registry))
    ]
    experiments = [
        ExperimentRow(
            str(row.experiment_id),
            str(row.task),
            row.variants,
            row.weights,
            float(row.coverage if row.coverage is not None else 1.0),
            str(row.status),
        )
        for row in connection.execute(select(ab_experiments))
    ]
    settings = select(ml_task_settings).where(ml_task_settings.c.ood_policy.is_not(None))
    ood_policies = {str(row.task): str(row.ood_policy) for row in connection.execute(settings)}
    return ControlRows(flags, models, experiments, ood_policies)


def _sortable(value: Any) -> str | None:
    """Timestamps as sortable text (SQLite may return strings, PostgreSQL datetimes)."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def insert_missing(
    connection: Connection, table_name: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` into a written table; rows whose key is present already are skipped.

    The statement is compiled once per dialect and the rows go to the driver's
    ``executemany`` as they are, each value converted only where the column's type needs
    it (a third of SQLAlchemy's per-row work, which shares the GIL with the requests).
    """
    if not rows:
        return
    sql, names, convert = _prepared(connection.dialect, table_name)
    stamp, by_position = TIMESTAMPS[table_name], connection.dialect.positional
    params: list[Any] = []
    for row in rows:
        values = {name: row.get(name) for name in names}
        if isinstance(when := values[stamp], str):
            values[stamp] = datetime.fromisoformat(when)
        for name, processor in convert:
            values[name] = processor(values[name])
        params.append(tuple(values.values()) if by_position else values)
    connection.exec_driver_sql(sql, params)


@functools.cache
def _prepared(
    dialect: Dialect, table_name: str
) -> tuple[str, tuple[str, ...], tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """The insert's SQL for ``dialect``, its parameters in order, and the columns whose
    values the driver needs converted (e.g. a timestamp as text on SQLite)."""
    table = WRITTEN[table_name]
    module = sqlite if dialect.name == "sqlite" else postgresql
    compiled = module.insert(table).on_conflict_do_nothing().compile(dialect=dialect)
    names = tuple(compiled.positiontup or (column.name for column in table.columns))
    convert = tuple(
        (column.name, processor)
        for column in table.columns
        if (processor := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    )
    return compiled.string, names, convert


def write_rows(engine: Engine, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Insert ``(table, row)`` pairs in one transaction; how many were given."""
    grouped: dict[str, list[Mapping[str, Any]]] = {name: [] for name in WRITTEN}
    count = 0
    for table_name, row in rows:
        grouped[table_name].append(row)
        count += 1
    with engine.begin() as connection:
        for table_name, group in grouped.items():
            insert_missing(connection, table_name, group)
    return count
