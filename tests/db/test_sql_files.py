"""`mixai-db sql`: files that psql (or sqlite3) applies to the same schema as `mixai-db upgrade`."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mixai_ml.db import schema
from mixai_ml.db.cli import main
from mixai_ml.db.migrations import LATEST, MIGRATIONS, apply_migrations, database_status
from mixai_ml.db.sqlfiles import file_name, migration_sql, write_sql_files

from .app_database import (
    app_only_values,
    engine_for,
    make_application_database,
    row_counts,
    snapshot,
)

PSQL_OPTIONS = ("-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction")


@pytest.fixture(scope="module")
def psql() -> str:
    found = shutil.which("psql") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), reverse=True)), None
    )
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("psql not found: install Debian's postgresql-client")
        pytest.skip("psql not found (Debian's postgresql-client)")
    return found


def apply_with_psql(psql: str, url: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """Each file in one transaction, stopping at the first error, as docs/database.md says."""
    target = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.CompletedProcess[str]([], 0, "", "")
    for path in files:
        done = subprocess.run(
            [psql, *PSQL_OPTIONS, "-d", target, "-f", str(path)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"},
        )
        if done.returncode:
            return done
    return done


def apply_with_sqlite3(path: Path, files: list[Path]) -> list[str]:
    """Each statement in turn, going on after errors like the sqlite3 shell; returns the errors."""
    errors = []
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for file in files:
            statement = ""
            for line in file.read_text().splitlines(keepends=True):
                statement += line
                if sqlite3.complete_statement(statement):
                    try:
                        connection.execute(statement)
                    except sqlite3.OperationalError as error:
                        errors.append(str(error))
                    statement = ""
    finally:
        connection.close()
    return errors


@pytest.mark.postgres
@pytest.mark.parametrize("start", ["empty", "application"])
def test_psql_gives_the_schema_of_upgrade_and_is_harmless_twice(
    psql: str, pg_database: Callable[[], str], tmp_path: Path, start: str
) -> None:
    by_psql, by_upgrade = pg_database(), pg_database()
    files = write_sql_files(tmp_path / "sql", "postgresql")
    with engine_for(by_psql) as scripted, engine_for(by_upgrade) as upgraded:
        counts = {}
        if start == "application":
            counts = make_application_database(scripted)
            make_application_database(upgraded)
        extra = app_only_values(scripted) if counts else {}

        done = apply_with_psql(psql, by_psql, files)
        assert done.returncode == 0, done.stderr
        apply_migrations(upgraded)

        assert snapshot(scripted) == snapshot(upgraded)
        status = database_status(scripted)
        assert status.up_to_date, status
        assert sorted(status.applied) == [migration.version for migration in MIGRATIONS]

        first = snapshot(scripted)
        again = apply_with_psql(psql, by_psql, files)
        assert again.returncode == 0, again.stderr
        assert snapshot(scripted) == first
        if counts:
            assert row_counts(scripted, list(counts)) == counts
            assert app_only_values(scripted) == extra


@pytest.mark.postgres
def test_psql_stops_with_advice_on_duplicate_keys(psql: str, pg_url: str, tmp_path: Path) -> None:
    files = write_sql_files(tmp_path / "sql", "postgresql")
    with engine_for(pg_url) as engine:
        make_application_database(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO ab_test_assignments VALUES "
                    "('exp-a', 'user-001', 'treatment', '2026-03-02 00:00:00')"
                )
            )
        done = apply_with_psql(psql, pg_url, files)

        assert done.returncode != 0
        assert "ab_test_assignments: cannot enforce the key (experiment_id, user_id)" in done.stderr
        assert "GROUP BY experiment_id, user_id HAVING count(*) > 1" in done.stderr
        # files 1 and 2 went through; file 3 (A/B tables) was rolled back as a whole
        assert sorted(database_status(engine).applied) == [1, 2]
        with engine.connect() as connection:
            assert not connection.execute(text("SELECT to_regclass('ab_test_results')")).scalar()


def test_sqlite_files_build_the_schema_of_upgrade(tmp_path: Path) -> None:
    files = write_sql_files(tmp_path / "sql", "sqlite")
    scripted_path = tmp_path / "scripted.db"

    assert apply_with_sqlite3(scripted_path, files) == []
    with engine_for(f"sqlite:///{scripted_path}") as scripted:
        with engine_for(f"sqlite:///{tmp_path / 'upgraded.db'}") as upgraded:
            apply_migrations(upgraded)
            assert snapshot(scripted) == snapshot(upgraded)
        assert database_status(scripted).up_to_date
        first = snapshot(scripted)

        errors = apply_with_sqlite3(scripted_path, files)

        # the documented exception: ADD COLUMN has no IF NOT EXISTS on SQLite
        added = sorted(
            (column.info["added_in"], position, column.name)
            for position, column in enumerate(
                c for table in schema.metadata.sorted_tables for c in table.columns
            )
            if column.info.get("added_in")
        )
        assert errors[:2] == [
            "duplicate column name: request_id",
            "duplicate column name: experiment_id",
        ]
        assert errors == [f"duplicate column name: {name}" for _, _, name in added]
        assert snapshot(scripted) == first


def test_sql_command_writes_ordered_files_and_a_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "--dialect", "postgresql", "--out", str(tmp_path)]) == 0
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [file_name(migration) for migration in MIGRATIONS]
    assert names[5] == "0006_adopt_existing_tables_missing_columns_keys_and_indexes.sql"
    capsys.readouterr()

    assert main(["sql", "--dialect", "postgresql"]) == 0
    stream = capsys.readouterr().out
    for migration in MIGRATIONS:
        separator = f"-- file: {file_name(migration)}\n"
        assert separator in stream
        section = stream.split(separator, 1)[1]
        assert section.split("\n", 2)[2].startswith(migration_sql(migration, "postgresql"))
    assert stream.index("-- file: 0001_") < stream.index("-- file: 0008_")
    # the same text every time (no dates): safe to commit and diff
    main(["sql", "--dialect", "postgresql"])
    assert capsys.readouterr().out == stream


def test_sql_files_record_their_version() -> None:
    for dialect in ("postgresql", "sqlite"):
        for migration in MIGRATIONS:
            sql = migration_sql(migration, dialect)
            assert f"VALUES ({migration.version}, " in sql
            assert sql.rstrip().endswith("ON CONFLICT (version) DO NOTHING;")
    (control,) = (m for m in MIGRATIONS if m.description.startswith("run-time control"))
    assert "CREATE TABLE IF NOT EXISTS ml_feature_flags" in migration_sql(control, "postgresql")
    (settings,) = (m for m in MIGRATIONS if m.description.startswith("per-task serving"))
    assert "CREATE TABLE IF NOT EXISTS ml_task_settings" in migration_sql(settings, "postgresql")
    (guard,) = (m for m in MIGRATIONS if m.description.startswith("model_metrics: out-of"))
    assert "ADD COLUMN IF NOT EXISTS ood_score" in migration_sql(guard, "postgresql")
    assert MIGRATIONS[-1].version == LATEST


def test_sql_for_a_new_column_is_an_alter() -> None:
    """A later column arrives as ALTER TABLE on both dialects, never as a rebuilt table."""
    seventh = next(migration for migration in MIGRATIONS if migration.version == 7)
    postgresql, sqlite_sql = (migration_sql(seventh, d) for d in ("postgresql", "sqlite"))
    alter = "ALTER TABLE model_metrics ADD COLUMN {}request_id VARCHAR(64);"
    assert alter.format("IF NOT EXISTS ") in postgresql
    assert alter.format("") in sqlite_sql
    assert "DROP TABLE" not in postgresql + sqlite_sql
