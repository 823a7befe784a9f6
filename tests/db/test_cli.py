"""`mixai-db status` and `mixai-db upgrade` on an application database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from mixai_ml.db.cli import main
from mixai_ml.db.migrations import LATEST, MIGRATIONS

from .app_database import engine_for, make_application_database


def test_status_then_upgrade_then_status(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with engine_for(db_url) as engine:
        make_application_database(engine)

    assert main(["status", "--db-url", db_url]) == 1
    before = capsys.readouterr().out
    assert f"schema version 0 of {LATEST} ({len(MIGRATIONS)} pending)" in before
    assert "    1  pending" in before
    assert "jobs: add column trimmed_inst_path — migration 1 makes it" in before
    assert "model_metrics: add column request_id — migration 7 makes it" in before
    assert "ml_feature_flags: create the table — migration 8 makes it" in before
    assert "ab_test_metrics: create index ix_ab_test_metrics_covering — migration 5" in before
    if db_url.startswith("postgresql"):
        expected = "ab_test_assignments: add the key (experiment_id, user_id) as primary key"
    else:  # SQLite cannot add a primary key to an existing table
        expected = (
            "ab_test_assignments: add the key (experiment_id, user_id) as unique index "
            "uq_ab_test_assignments_key"
        )
    assert expected in before
    assert "labels: add the key (job_id, task) as unique index uq_labels_key" in before
    assert "BLOCKED" not in before

    assert main(["upgrade", "--db-url", db_url]) == 0
    upgraded = capsys.readouterr().out
    assert "migration 1: jobs: add column trimmed_inst_path" in upgraded
    versions = ", ".join(str(migration.version) for migration in MIGRATIONS)
    assert f"applied migrations {versions}" in upgraded

    assert main(["status", "--db-url", db_url]) == 0
    after = capsys.readouterr().out
    assert f"schema version {LATEST} of {LATEST} (0 pending)" in after
    assert "drift from the schema: none" in after
    assert "pending" not in after.split("\n", 2)[2]

    assert main(["upgrade", "--db-url", db_url]) == 0
    assert f"up to date (schema version {LATEST})" in capsys.readouterr().out


def test_status_warns_of_duplicates_and_upgrade_fails_with_advice(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine_for(sqlite_url) as engine:
        make_application_database(engine)
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO ab_test_assignments SELECT * FROM ab_test_assignments LIMIT 3")
            )

    assert main(["status", "--db-url", sqlite_url]) == 1
    status = capsys.readouterr().out
    assert "BLOCKED: ab_test_assignments: cannot enforce the key (experiment_id, user_id)" in status
    assert "3 values occur more than once" in status

    assert main(["upgrade", "--db-url", sqlite_url]) == 2
    captured = capsys.readouterr()
    assert "applied migration 2" in captured.out
    assert "error: migration 3 (A/B tables: assignments, metrics, results) stopped" in captured.err
    assert "Keep one row per value" in captured.err


def test_status_of_a_missing_sqlite_file_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.db"
    assert main(["status", "--db-url", f"sqlite:///{path}"]) == 1
    assert "no database file yet" in capsys.readouterr().out
    assert not path.exists()


def test_the_console_script_reads_mixai_db_url(sqlite_url: str) -> None:
    script = Path(sys.executable).with_name("mixai-db")
    environment = {**os.environ, "MIXAI_DB_URL": sqlite_url}
    upgrade = subprocess.run(
        [str(script), "upgrade"], capture_output=True, text=True, env=environment, check=False
    )
    assert upgrade.returncode == 0, upgrade.stderr
    status = subprocess.run(
        [str(script), "status"], capture_output=True, text=True, env=environment, check=False
    )
    assert status.returncode == 0, status.stderr
    assert f"database {sqlite_url}" in status.stdout
    assert "drift from the schema: none" in status.stdout


def test_an_unreachable_database_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'folder-not-file'}"
    (tmp_path / "folder-not-file").mkdir()
    assert main(["upgrade", "--db-url", url]) == 2
    assert "error: (sqlite3.OperationalError) unable to open database file" in (
        capsys.readouterr().err
    )
