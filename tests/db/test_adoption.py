"""Migrations adopt a database the application made: nothing dropped, no row lost, keys added."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, inspect, select, text

from mixai_ml.db import schema
from mixai_ml.db.ensure import EnsureTable, MigrationError, ensure
from mixai_ml.db.migrations import (
    LATEST,
    MIGRATIONS,
    Migration,
    apply_migrations,
    database_status,
    schema_version,
)
from mixai_ml.db.shapes import table_at

from .app_database import (
    APP_ONLY_COLUMNS,
    CONTRACT_COLUMNS,
    CONTRACT_KEYS,
    app_only_values,
    contract_indexes,
    engine_for,
    has_key,
    make_application_database,
    row_counts,
    snapshot,
)


def test_upgrade_adopts_an_application_database(db_url: str) -> None:
    with engine_for(db_url) as engine:
        counts = make_application_database(engine)
        extra_before = app_only_values(engine)

        assert apply_migrations(engine) == [migration.version for migration in MIGRATIONS]

        inspector = inspect(engine)
        for name, columns in CONTRACT_COLUMNS.items():
            actual = {column["name"] for column in inspector.get_columns(name)}
            assert columns <= actual, f"{name} lacks {columns - actual}"
        for name, column in APP_ONLY_COLUMNS.items():
            assert column in {c["name"] for c in inspector.get_columns(name)}
        assert app_only_values(engine) == extra_before
        assert row_counts(engine, list(counts)) == counts
        for name, key in CONTRACT_KEYS.items():
            assert has_key(engine, name, key), f"{name} has no key {key}"
        for name, indexes in contract_indexes().items():
            assert indexes <= {index["name"] for index in inspector.get_indexes(name)}, name
        # the app's surrogate primary key stays; the contract key is a unique index beside it
        assert inspector.get_pk_constraint("labels")["constrained_columns"] == ["id"]
        if engine.dialect.name == "postgresql":
            # a table without a primary key gets the real one
            pk = inspector.get_pk_constraint("ab_test_assignments")
            assert pk["name"] == "pk_ab_test_assignments"
        assert database_status(engine).up_to_date
        # what the app's rows lack is NULL, and the tables take new contract rows
        with engine.begin() as connection:
            trimmed = connection.execute(select(schema.jobs.c.trimmed_inst_path)).scalars()
            assert set(trimmed) == {None}
            connection.execute(
                insert(schema.model_metrics).values(
                    recorded_at=datetime(2026, 3, 2, tzinfo=UTC),
                    task="preset_cls",
                    source="rules",
                    latency_ms=0.2,
                    ok=True,
                    request_id="r1",
                    experiment_id="exp-a",
                )
            )


def test_a_duplicate_key_stops_the_migration_whole_and_says_how_to_fix_it(db_url: str) -> None:
    with engine_for(db_url) as engine:
        counts = make_application_database(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO labels (job_id, task, label, created_at) "
                    "VALUES ('job-0003', 'master_reg', '{\"x\": 1}', '2026-03-02 00:00:00')"
                )
            )
        before = snapshot(engine)

        with pytest.raises(MigrationError) as caught:
            apply_migrations(engine)

        message = str(caught.value)
        assert "migration 1" in message
        assert "nothing of it was applied" in message
        assert "labels: cannot enforce the key (job_id, task)" in message
        assert "1 values occur more than once, e.g. ('job-0003', 'master_reg') in 2 rows" in message
        assert "GROUP BY job_id, task HAVING count(*) > 1" in message
        assert "docs/database.md" in message
        # migration 1 had added jobs.trimmed_inst_path and created ml_exclusions: rolled back
        after = {k: v for k, v in snapshot(engine).items() if k != "schema_migrations"}
        assert after == before
        assert schema_version(engine) == 0
        assert row_counts(engine, list(counts))["labels"] == counts["labels"] + 1

        with engine.begin() as connection:  # the fix the message asks for
            connection.execute(text("DELETE FROM labels WHERE label = '{\"x\": 1}'"))
        assert apply_migrations(engine)[-1] == LATEST
        assert has_key(engine, "labels", ("job_id", "task"))


def test_rows_with_a_null_key_are_reported(sqlite_url: str) -> None:
    with engine_for(sqlite_url) as engine:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE ml_consent (user_id TEXT, consented BOOLEAN)"))
            connection.execute(text("INSERT INTO ml_consent VALUES (NULL, 1), ('u1', 1)"))
        with pytest.raises(MigrationError, match="1 rows have a NULL in the key"):
            apply_migrations(engine)


def test_a_database_migrated_by_release_0_1_0_is_adopted(db_url: str) -> None:
    """0.1.0 recorded migrations 1-5 but skipped tables that existed: migration 6 adopts them."""
    with engine_for(db_url) as engine:
        counts = make_application_database(engine)
        schema.schema_migrations.create(engine)
        with engine.begin() as connection:
            for migration in MIGRATIONS[:5]:
                for step in migration.steps:
                    if isinstance(step, EnsureTable):  # create what is missing, as 0.1.0 did
                        table_at(step.table, 5).create(connection, checkfirst=True)
            connection.execute(
                insert(schema.schema_migrations),
                [
                    {
                        "version": m.version,
                        "description": m.description,
                        "applied_at": datetime.now(UTC),
                    }
                    for m in MIGRATIONS[:5]
                ],
            )
        assert not has_key(engine, "ab_test_assignments", ("experiment_id", "user_id"))

        assert apply_migrations(engine) == [m.version for m in MIGRATIONS[5:]]

        assert has_key(engine, "ab_test_assignments", ("experiment_id", "user_id"))
        assert "ix_ab_test_metrics_covering" in {
            index["name"] for index in inspect(engine).get_indexes("ab_test_metrics")
        }
        assert row_counts(engine, list(counts)) == counts
        assert database_status(engine).up_to_date


def test_each_version_has_exactly_the_elements_added_up_to_it(sqlite_url: str) -> None:
    """A new database at version v has the shapes of the schema at v, for every v."""
    with engine_for(sqlite_url) as engine:
        for count, migration in enumerate(MIGRATIONS, start=1):
            apply_migrations(engine, MIGRATIONS[:count])
            inspector = inspect(engine)
            for name in set(inspector.get_table_names()) - {"schema_migrations"}:
                shaped = table_at(schema.metadata.tables[name], migration.version)
                columns = [column["name"] for column in inspector.get_columns(name)]
                assert set(columns) == set(shaped.columns.keys()), (migration.version, name)
                indexes = {index["name"] for index in inspector.get_indexes(name)}
                assert indexes == {index.name for index in shaped.indexes}


def test_every_schema_element_arrives_by_a_migration() -> None:
    ensured: dict[str, list[int]] = {}
    for migration in MIGRATIONS:
        for step in migration.steps:
            if isinstance(step, EnsureTable):
                ensured.setdefault(step.table.name, []).append(migration.version)
    managed = set(schema.metadata.tables) - {"schema_migrations"}
    assert managed == set(ensured), "a table of the schema has no migration"
    for name, shape in schema.metadata.tables.items():
        items = [*shape.columns, *shape.indexes]
        for item in items:
            version = item.info.get("added_in")
            if version is not None:
                assert version in ensured[name], f"{name}.{item.name}: no migration {version}"
                assert version > min(ensured[name]), f"{name}.{item.name}: added at creation"


def test_a_later_column_is_one_schema_line_and_one_migration(db_url: str) -> None:
    """The mechanism on a table of its own: NOT NULL with a server default fills old rows."""
    metadata = MetaData()
    songs = Table(
        "songs",
        metadata,
        Column("song_id", String(16), primary_key=True),
        Column("plays", Integer, nullable=False, server_default="0", info={"added_in": 2}),
        Column("genre", String(16), nullable=False, info={"added_in": 2}),
    )
    history = [Migration(1, "songs", ensure(songs)), Migration(2, "plays", ensure(songs))]
    with engine_for(db_url) as engine:
        apply_migrations(engine, history[:1])
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO songs (song_id) VALUES ('a'), ('b')"))

        assert apply_migrations(engine, history) == [2]

        columns = {column["name"]: column for column in inspect(engine).get_columns("songs")}
        assert not columns["plays"]["nullable"]
        # NOT NULL without a default cannot be added to rows that exist: NULL-able instead
        assert columns["genre"]["nullable"]
        with engine.connect() as connection:
            plays = connection.execute(text("SELECT plays FROM songs")).scalars().all()
        assert plays == [0, 0]


def test_concurrent_upgrades_apply_each_migration_once(db_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[int]] = []

    def upgrade() -> None:
        with engine_for(db_url) as engine:
            try:
                applied.append(apply_migrations(engine))
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(v for versions in applied for v in versions) == [m.version for m in MIGRATIONS]
    with engine_for(db_url) as engine:
        assert schema_version(engine) == LATEST
