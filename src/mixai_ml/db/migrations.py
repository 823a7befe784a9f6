"""Versioned, idempotent migrations of the application database.

Each :class:`Migration` has a version number and an ``upgrade`` that brings a
database at the previous version to this one. ``schema_migrations`` records what
has been applied, so :func:`apply_migrations` can run any number of times, on
SQLite and PostgreSQL alike. Table shapes come from :mod:`mixai_ml.db.schema`; to
change a table, change it there *and* append a migration that alters existing
databases (never edit an applied migration).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, insert, inspect, select, text

from mixai_ml.db import schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One step of the schema history."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def upgrade(connection: Connection) -> None:
        for table in tables:
            table.create(connection, checkfirst=True)

    return upgrade


def _covering_ab_metrics_index(connection: Connection) -> None:
    """Replace the (experiment, metric, user) index by one that also holds value and time."""
    existing = {index["name"] for index in inspect(connection).get_indexes("ab_test_metrics")}
    if "ix_ab_test_metrics_experiment_metric_user" in existing:
        connection.execute(text("DROP INDEX ix_ab_test_metrics_experiment_metric_user"))
    covering = next(
        i for i in schema.ab_test_metrics.indexes if i.name == "ix_ab_test_metrics_covering"
    )
    if covering.name not in existing:
        covering.create(connection)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "application tables: jobs, consent, exclusions, labels",
        _create(schema.jobs, schema.ml_consent, schema.ml_exclusions, schema.labels),
    ),
    Migration(
        2,
        "ML tables: feature store, feature failures, registry, online metrics, training jobs",
        _create(
            schema.features_store,
            schema.feature_failures,
            schema.model_registry,
            schema.model_metrics,
            schema.training_jobs,
        ),
    ),
    Migration(
        3,
        "A/B tables: assignments, metrics, results",
        _create(schema.ab_test_assignments, schema.ab_test_metrics, schema.ab_test_results),
    ),
    Migration(4, "privacy: purge audit", _create(schema.purge_audit)),
    Migration(5, "A/B: covering index on ab_test_metrics", _covering_ab_metrics_index),
)


def applied_versions(engine: Engine) -> set[int]:
    """Versions recorded in ``schema_migrations`` (empty for a new database)."""
    if not inspect(engine).has_table(schema.schema_migrations.name):
        return set()
    with engine.connect() as connection:
        rows = connection.execute(select(schema.schema_migrations.c.version))
        return {int(version) for (version,) in rows}


def apply_migrations(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction.

    Returns:
        The versions applied by this call, in order (empty when up to date).
    """
    versions = [migration.version for migration in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and increasing, got {versions}")
    schema.schema_migrations.create(engine, checkfirst=True)
    done = applied_versions(engine)
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        with engine.begin() as connection:
            migration.upgrade(connection)
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


def schema_version(engine: Engine) -> int:
    """The highest applied migration version (0 for a new database)."""
    return max(applied_versions(engine), default=0)
