"""Migrations create every contract table, idempotently, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text

from mixai_ml.db import schema
from mixai_ml.db.migrations import MIGRATIONS, apply_migrations, schema_version

# CONTRACTS §4: each table with the columns others depend on.
CONTRACT_COLUMNS = {
    "jobs": {
        "job_id",
        "user_id",
        "created_at",
        "vocal_path",
        "inst_path",
        "trimmed_inst_path",
        "mix_path",
    },
    "ml_consent": {"user_id", "consented", "updated_at", "withdrawn_at"},
    "ml_exclusions": {"exclusion_id", "user_id", "job_id", "reason", "note", "created_at"},
    "labels": {"job_id", "task", "label", "created_at"},
    "features_store": {"job_id", "schema_version", "extracted_at"},
    "model_registry": {
        "model_id",
        "task",
        "version",
        "uri",
        "sha256",
        "feature_schema_version",
        "status",
        "rollout_pct",
        "metrics",
        "created_at",
        "promoted_at",
    },
    "model_metrics": {
        "recorded_at",
        "task",
        "model_version",
        "variant",
        "source",
        "latency_ms",
        "ok",
        "error",
        "user_id",
        "job_id",
        "prediction",
    },
    "training_jobs": {
        "training_job_id",
        "task",
        "status",
        "reason",
        "n_samples",
        "model_version",
        "started_at",
        "finished_at",
    },
    "ab_test_assignments": {"experiment_id", "user_id", "variant", "assigned_at"},
    "ab_test_metrics": {"experiment_id", "user_id", "metric", "value", "recorded_at"},
    "ab_test_results": {
        "experiment_id",
        "metric",
        "variant",
        "control_variant",
        "n_control",
        "n_variant",
        "mean_control",
        "mean_variant",
        "abs_effect",
        "abs_ci_low",
        "abs_ci_high",
        "rel_effect",
        "rel_ci_low",
        "rel_ci_high",
        "p_value",
        "p_value_adjusted",
        "significant",
        "srm_p_value",
        "decision",
    },
}
CONTRACT_KEYS = {
    "jobs": ["job_id"],
    "ml_consent": ["user_id"],
    "ml_exclusions": ["exclusion_id"],
    "labels": ["job_id", "task"],
    "features_store": ["job_id", "schema_version"],
    "model_registry": ["model_id"],
    "training_jobs": ["training_job_id"],
    "ab_test_assignments": ["experiment_id", "user_id"],
}


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
        assert inspector.get_pk_constraint(table)["constrained_columns"] == key
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
    ],
)
def test_constraints_reject_values_outside_the_contract(
    sqlite_url: str, table: str, row: dict[str, object]
) -> None:
    engine = create_engine(sqlite_url)
    apply_migrations(engine)
    stamp = {"created_at": datetime(2026, 1, 1, tzinfo=UTC)}
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
    with engine.begin() as connection:  # the index as migration 3 created it back then
        connection.execute(text('DROP INDEX "ix_ab_test_metrics_covering"'))
        connection.execute(
            text(
                "CREATE INDEX ix_ab_test_metrics_experiment_metric_user "
                "ON ab_test_metrics (experiment_id, metric, user_id)"
            )
        )

    assert apply_migrations(engine) == [5]

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
