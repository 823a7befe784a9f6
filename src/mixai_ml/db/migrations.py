"""Versioned migrations of the application database, on SQLite and PostgreSQL alike.

Each :class:`Migration` has a version number and steps (:mod:`mixai_ml.db.ensure`), usually
"make these tables match the schema": create them when missing, else add what they lack. So the
same migrations build a new database and adopt one that the application made.
``schema_migrations`` records what has been applied, so :func:`apply_migrations` can run any
number of times. Table shapes come from :mod:`mixai_ml.db.schema`; to change a table, change it
there (a column or index added to an existing table carries ``info=added_in(N)``) and append
``Migration(N, "...", ensure(schema.that_table))``. Never edit a released migration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, inspect, select, text
from sqlalchemy.schema import CreateTable

from mixai_ml.db import ab_store_tables, schema
from mixai_ml.db.ensure import (
    Change,
    DropIndex,
    EnsureTable,
    MigrationError,
    Step,
    UpdateRows,
    ensure,
)

logger = logging.getLogger(__name__)

# Any constant: PostgreSQL sessions that migrate the same database take turns on it.
_ADVISORY_LOCK = 0x6D69786169_6462


@dataclass(frozen=True)
class Migration:
    """One step of the schema history."""

    version: int
    description: str
    steps: tuple[Step, ...]

    @property
    def slug(self) -> str:
        """The description as a file name part: ``a_b_tables_assignments_metrics``."""
        words = re.findall(r"[a-z0-9]+", self.description.lower())
        slug = ""
        for word in words:
            if len(slug) + len(word) + 1 > 60:
                break
            slug = f"{slug}_{word}" if slug else word
        return slug


_APPLICATION_TABLES = (schema.jobs, schema.ml_consent, schema.ml_exclusions, schema.labels)
_ML_TABLES = (
    schema.features_store,
    schema.feature_failures,
    schema.model_registry,
    schema.model_metrics,
    schema.training_jobs,
)
_AB_TABLES = (schema.ab_test_assignments, schema.ab_test_metrics, schema.ab_test_results)

_OLD_STORE_PREFIX = "data/06_models/registry/"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "application tables: jobs, consent, exclusions, labels", ensure(*_APPLICATION_TABLES)
    ),
    Migration(
        2,
        "ML tables: feature store, feature failures, registry, online metrics, training jobs",
        ensure(*_ML_TABLES),
    ),
    Migration(3, "A/B tables: assignments, metrics, results", ensure(*_AB_TABLES)),
    Migration(4, "privacy: purge audit", ensure(schema.purge_audit)),
    Migration(
        5,
        "A/B: covering index on ab_test_metrics",
        (
            DropIndex("ab_test_metrics", "ix_ab_test_metrics_experiment_metric_user"),
            *ensure(schema.ab_test_metrics),
        ),
    ),
    # Release 0.1.0 only created missing tables: adopt the ones that existed before it.
    Migration(
        6,
        "adopt existing tables: missing columns, keys and indexes",
        ensure(*_APPLICATION_TABLES, *_ML_TABLES, *_AB_TABLES, schema.purge_audit),
    ),
    Migration(7, "model_metrics: request_id and experiment_id", ensure(schema.model_metrics)),
    Migration(
        8,
        "run-time control: feature flags, experiments, admin audit log",
        ensure(schema.ml_feature_flags, schema.ab_experiments, schema.admin_audit_log),
    ),
    Migration(
        9, "model_metrics: out-of-distribution score and input sketch", ensure(schema.model_metrics)
    ),
    Migration(
        10,
        "privacy: purge runs, completed withdrawals, purged A/B assignment counts",
        ensure(schema.purge_runs, schema.purge_withdrawals, schema.ab_purged_assignments),
    ),
    Migration(
        11,
        "console runs: pipeline_runs, training_jobs.run_id",
        ensure(schema.pipeline_runs, schema.training_jobs),
    ),
    # Release 0.1.0 wrote registry paths from the project root; they are relative to the store.
    Migration(
        15,
        "model_registry: uri relative to the model store",
        (
            UpdateRows(
                "model_registry",
                f"uri = substr(uri, {len(_OLD_STORE_PREFIX) + 1})",
                f"substr(uri, 1, {len(_OLD_STORE_PREFIX)}) = '{_OLD_STORE_PREFIX}'",
                "make uri relative to the model store",
            ),
        ),
    ),
    Migration(
        16,
        "per-task serving settings: out-of-distribution policy",
        ensure(schema.ml_task_settings),
    ),
    # 20+: the A/B sums (numbered apart from the others until merged)
    Migration(
        20,
        "A/B: sufficient statistics kept by ab_analysis and the time indexes that feed them",
        ensure(
            ab_store_tables.ab_statistics_state,
            ab_store_tables.ab_folded_days,
            ab_store_tables.ab_assignment_daily,
            ab_store_tables.ab_metric_daily,
            ab_store_tables.ab_metric_histogram,
            ab_store_tables.ab_metric_caps,
            schema.ab_test_metrics,
            schema.ab_test_assignments,
        ),
    ),
    Migration(
        21,
        "A/B: result columns for metric types, caps and the corrections",
        ensure(schema.ab_test_results),
    ),
)

LATEST = MIGRATIONS[-1].version


def applied_migrations(engine: Engine) -> dict[int, datetime]:
    """Version → when it was applied, from ``schema_migrations`` (empty for a new database)."""
    if not inspect(engine).has_table(schema.schema_migrations.name):
        return {}
    table = schema.schema_migrations
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.version, table.c.applied_at))
        return {int(version): applied_at for version, applied_at in rows}


def applied_versions(engine: Engine) -> set[int]:
    """Versions recorded in ``schema_migrations`` (empty for a new database)."""
    return set(applied_migrations(engine))


def schema_version(engine: Engine) -> int:
    """The highest applied migration version (0 for a new database)."""
    return max(applied_versions(engine), default=0)


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and increasing, got {versions}")


@contextmanager
def exclusive_transaction(engine: Engine, lock: int = _ADVISORY_LOCK) -> Iterator[Connection]:
    """A transaction that DDL is part of, holding off other processes that take ``lock``.

    SQLite's Python driver runs DDL outside any transaction unless one is opened explicitly;
    ``BEGIN IMMEDIATE`` also takes the write lock at once. PostgreSQL: the advisory lock
    ``lock`` (migrations take the default one).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
        yield connection


def _is_applied(connection: Connection, version: int) -> bool:
    table = schema.schema_migrations
    found = connection.execute(select(table.c.version).where(table.c.version == version))
    return found.first() is not None


def _run(connection: Connection, migration: Migration) -> None:
    """Plan and apply each step in turn; the first obstacle stops the whole migration."""
    for step in migration.steps:
        for change in step.plan(connection, migration.version):
            obstacle = change.obstacle(connection)
            if obstacle:
                raise MigrationError(
                    f"migration {migration.version} ({migration.description}) stopped; "
                    f"nothing of it was applied.\n{obstacle}"
                )
            for statement in change.statements(connection.dialect):
                connection.exec_driver_sql(statement)
            logger.info("migration %d: %s", migration.version, change.describe())


def apply_migrations(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction.

    Raises:
        MigrationError: When the data prevents a change (e.g. duplicate keys on an adopted
            table). That migration is rolled back as a whole; earlier ones stay applied.

    Returns:
        The versions applied by this call, in order (empty when up to date).
    """
    _check_order(migrations)
    done = applied_versions(engine)
    if not done:
        with exclusive_transaction(engine) as connection:
            connection.execute(CreateTable(schema.schema_migrations, if_not_exists=True))
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        with exclusive_transaction(engine) as connection:
            if _is_applied(connection, migration.version):  # another process was first
                continue
            _run(connection, migration)
            connection.execute(
                insert(schema.schema_migrations).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
        logger.info("applied migration %d: %s", migration.version, migration.description)
        applied.append(migration.version)
    return applied


# --- status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """Something the live database lacks compared with the schema."""

    change: Change
    fixed_by: int | None
    """The pending migration that makes it, or ``None`` (then nothing will: added by hand?)."""
    obstacle: str | None
    """Why the data prevents it, if it does (then migrating stops there)."""


@dataclass(frozen=True)
class DatabaseStatus:
    applied: dict[int, datetime]
    pending: tuple[Migration, ...]
    unknown: tuple[int, ...]
    """Versions recorded in the database that this release does not know (a newer one ran)."""
    drift: tuple[Drift, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.drift


def _fixed_by(change: Change, pending: Sequence[Migration]) -> int | None:
    for migration in pending:
        if migration.version >= change.since and any(
            isinstance(step, EnsureTable) and step.table.name == change.table
            for step in migration.steps
        ):
            return migration.version
    return None


def contract_tables(migrations: Sequence[Migration] = MIGRATIONS) -> list[EnsureTable]:
    """One step per table the migrations manage, in the order they first appear."""
    steps: dict[str, EnsureTable] = {}
    for migration in migrations:
        for step in migration.steps:
            if isinstance(step, EnsureTable):
                steps.setdefault(step.table.name, step)
    return list(steps.values())


def database_status(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> DatabaseStatus:
    """Applied and pending migrations, and what the database lacks compared with the schema."""
    applied = applied_migrations(engine)
    known = {migration.version for migration in migrations}
    pending = tuple(migration for migration in migrations if migration.version not in applied)
    latest = max(known, default=0)
    drift = []
    with engine.connect() as connection:
        for step in contract_tables(migrations):
            for change in step.plan(connection, latest):
                drift.append(Drift(change, _fixed_by(change, pending), change.obstacle(connection)))
    return DatabaseStatus(
        applied=applied,
        pending=pending,
        unknown=tuple(sorted(set(applied) - known)),
        drift=tuple(drift),
    )
