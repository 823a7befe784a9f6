"""Migrations create every contract table, idempotently, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text

from mixai_ml.db import schema
from mixai_ml.db.migrations import MIGRATIONS, apply_migrations, schema_version

from .app_database import CONTRACT_COLUMNS, CONTRACT_KEYS


def test_migrations_twice_create_every_contract_table(db_url: str) -> None:
    engine = create_engine(db_url)
    first = apply_migrations(engine)
    second = apply_migrations(engine)

    assert first == [migration.version for migration in MIGRATIONS]
    assert second == []
    assert schema_version(engine) == MIGRATIONS[-1].version
    inspector = inspect(engine)
    for table, columns in CONTRACT_COLUMNS.items():
        actual = {column["name"] for column in inspector.get_columns(table)}
        assert columns <= actual, f"{table} lacks {columns - actual}"
    for table, key in CONTRACT_KEYS.items():
        assert tuple(inspector.get_pk_constraint(table)["constrained_columns"]) == key
    feature_columns = {column["name"] for column in inspector.get_columns("features_store")}
    assert set(schema.FEATURE_COLUMNS) <= feature_columns
    engine.dispose()


def test_migrations_keep_existing_rows(db_url: str) -> None:
    engine = create_engine(db_url)
    apply_migrations(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(schema.ml_consent).values(user_id="u1", consented=True, updated_at=now)
        )
    apply_migrations(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(schema.ml_consent.c.user_id)).all()
    assert rows == [("u1",)]
    engine.dispose()


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("ml_exclusions", {"exclusion_id": "e1", "user_id": "u1", "reason": "vacation"}),
        ("ml_exclusions", {"exclusion_id": "e2", "reason": "manual"}),
        ("labels", {"job_id": "j1", "task": "mastering", "label": "{}"}),
        (
            "model_registry",
            {
                "model_id": "m",
                "task": "master_reg",
                "version": "v",
                "uri": "u",
                "sha256": "0",
                "feature_schema_version": "1",
                "status": "active",
                "rollout_pct": 150.0,
            },
        ),
        ("ml_feature_flags", {"flag": "enable_gpu", "enabled": True}),
        ("ml_task_settings", {"task": "master_reg", "ood_policy": "ignore"}),
        ("ml_task_settings", {"task": "mastering", "ood_policy": "flag"}),
        (
            "ab_experiments",
            {"experiment_id": "x", "task": "master_reg", "variants": "{}", "weights": "{}"}
            | {"coverage": 1.5, "status": "running"},
        ),
        (
            "ab_experiments",
            {"experiment_id": "x", "task": "master_reg", "variants": "{}", "weights": "{}"}
            | {"coverage": 0.5, "status": "paused"},
        ),
    ],
)
def test_constraints_reject_values_outside_the_contract(
    sqlite_url: str, table: str, row: dict[str, object]
) -> None:
    engine = create_engine(sqlite_url)
    apply_migrations(engine)
    stamp = {
        column.name: datetime(2026, 1, 1, tzinfo=UTC)
        for column in schema.metadata.tables[table].columns
        if column.name in ("created_at", "updated_at")
    }
    with pytest.raises(Exception, match="CHECK constraint failed"), engine.begin() as connection:
        connection.execute(insert(schema.metadata.tables[table]).values(**row, **stamp))
    engine.dispose()


def test_unordered_migrations_are_refused(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with pytest.raises(ValueError, match="unique and increasing"):
        apply_migrations(engine, [MIGRATIONS[1], MIGRATIONS[0]])
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_migration_5_upgrades_a_version_4_database(db_url: str) -> None:
    """A database created before the covering index gets it, and loses the old index."""
    engine = create_engine(db_url)
    apply_migrations(engine, MIGRATIONS[:4])
    with engine.begin() as connection:  # the index as migration 3 of release 0.1.0 created it
        connection.execute(
            text(
                "CREATE INDEX ix_ab_test_metrics_experiment_metric_user "
                "ON ab_test_metrics (experiment_id, metric, user_id)"
            )
        )

    assert apply_migrations(engine, MIGRATIONS[:5]) == [5]

    indexes = {
        index["name"]: index["column_names"]
        for index in inspect(engine).get_indexes("ab_test_metrics")
    }
    assert indexes == {
        "ix_ab_test_metrics_covering": [
            "experiment_id",
            "metric",
            "user_id",
            "value",
            "recorded_at",
        ]
    }
    engine.dispose()
