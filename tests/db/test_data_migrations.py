"""Migrations that rewrite values an older release wrote (not only shapes)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from mixai_ml.db import schema
from mixai_ml.db.migrations import MIGRATIONS, apply_migrations, database_status
from mixai_ml.db.sqlfiles import migration_sql

from .app_database import engine_for

OLD_RELEASE = [migration for migration in MIGRATIONS if migration.version <= 8]


def _registry_row(version: str, uri: str) -> dict[str, object]:
    return {
        "model_id": f"master_reg-{version}",
        "task": "master_reg",
        "version": version,
        "uri": uri,
        "sha256": "0" * 64,
        "feature_schema_version": "1",
        "status": "active",
        "rollout_pct": 100,
        "created_at": datetime(2026, 11, 25, tzinfo=UTC),
    }


def test_registry_uris_written_from_the_project_root_become_relative_to_the_store(
    db_url: str,
) -> None:
    with engine_for(db_url) as engine:
        apply_migrations(engine, OLD_RELEASE)
        with engine.begin() as connection:
            connection.execute(
                insert(schema.model_registry),
                [
                    _registry_row("a1", "data/06_models/registry/master_reg/a1.onnx"),
                    _registry_row("b2", "master_reg/b2.onnx"),  # written by this release
                ],
            )
        assert any(
            migration.description.startswith("model_registry: uri")
            for migration in database_status(engine).pending
        )

        apply_migrations(engine)

        table = schema.model_registry
        with engine.connect() as connection:
            uris = dict(connection.execute(select(table.c.version, table.c.uri)).all())
        assert uris == {"a1": "master_reg/a1.onnx", "b2": "master_reg/b2.onnx"}


def test_the_rewrite_is_idempotent_as_sql(sqlite_url: str) -> None:
    (rewrite,) = (m for m in MIGRATIONS if m.description.startswith("model_registry: uri"))
    with engine_for(sqlite_url) as engine:
        apply_migrations(engine, OLD_RELEASE)
        with engine.begin() as connection:
            connection.execute(
                insert(schema.model_registry),
                [_registry_row("a1", "data/06_models/registry/master_reg/a1.onnx")],
            )
    database = make_url(sqlite_url).database
    assert database
    with closing(sqlite3.connect(database)) as connection:
        for _ in range(2):
            connection.executescript(migration_sql(rewrite, "sqlite"))
        assert connection.execute("SELECT uri FROM model_registry").fetchall() == [
            ("master_reg/a1.onnx",)
        ]
