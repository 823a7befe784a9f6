"""SELECTs in worker processes over a SQLite file: their rows, the caller's lock, their errors."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mixai_ml.db.sqlite_shares import Share, copy_rows, hold_write_lock, run_shares


@pytest.fixture
def numbers(tmp_path: Path) -> str:
    """A database file with ``numbers(k, v)``: k = 0…999, v = k²."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE numbers (k INTEGER PRIMARY KEY, v INTEGER)")
        connection.executemany(
            "INSERT INTO numbers VALUES (?, ?)", [(k, k * k) for k in range(1000)]
        )
        connection.execute("CREATE TABLE totals (part INTEGER, total INTEGER)")
        connection.execute("CREATE TABLE weights (k INTEGER PRIMARY KEY, w INTEGER)")
        connection.execute("INSERT INTO weights VALUES (1, 1)")
    return f"sqlite:///{path}"


def _part_sum(part: int, parts: int) -> Share:
    # weights: the caller's uncommitted rows, passed in; they hide the stored table
    return Share(
        [
            text(
                "CREATE TABLE main.totals AS SELECT :part AS part, SUM(n.v * w.w) AS total "
                "FROM numbers n JOIN weights w ON w.k = n.k % 2 WHERE n.k % :parts = :part"
            ).bindparams(part=part, parts=parts)
        ],
        temporary={"weights": ("k INTEGER PRIMARY KEY, w INTEGER", [(0, 2), (1, 3)])},
    )


def test_shares_read_the_callers_rows_and_their_sums_are_copied_in(numbers: str) -> None:
    engine = create_engine(numbers)
    with engine.begin() as connection:
        connection.execute(text("UPDATE weights SET w = 100"))  # uncommitted: not what they see
        hold_write_lock(connection)
        with run_shares(connection, [_part_sum(part, 3) for part in range(3)]) as scratch:
            assert len(scratch) == 3
            assert all(path.exists() for path in scratch)
            copied = sum(
                copy_rows(connection, path, "totals", ("part", "total")) for path in scratch
            )
        folder = scratch[0].parent
        rows = dict(connection.execute(text("SELECT part, total FROM totals")).all())
    assert copied == 3
    assert not folder.exists()
    expected = {p: sum(k * k * (3 if k % 2 else 2) for k in range(p, 1000, 3)) for p in range(3)}
    assert rows == expected


def test_the_callers_write_lock_holds_off_other_writers_not_readers(numbers: str) -> None:
    path = numbers.removeprefix("sqlite:///")
    with create_engine(numbers).begin() as connection:
        hold_write_lock(connection)
        other = sqlite3.connect(path, timeout=0)
        assert other.execute("SELECT COUNT(*) FROM numbers").fetchone() == (1000,)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO numbers VALUES (5000, 0)")
        other.rollback()
        other.close()


def test_a_workers_error_is_raised_and_its_scratch_removed(numbers: str) -> None:
    broken = Share([text("CREATE TABLE main.totals AS SELECT missing_column FROM numbers")])
    before = set(Path(tempfile.gettempdir()).glob("mixai-shares-*"))
    with create_engine(numbers).begin() as connection:
        hold_write_lock(connection)
        failing = run_shares(connection, [_part_sum(0, 2), broken])
        with pytest.raises(OperationalError, match="missing_column"), failing:
            pass
    assert set(Path(tempfile.gettempdir()).glob("mixai-shares-*")) == before


def test_workers_need_a_database_file() -> None:
    with create_engine("sqlite://").connect() as connection:
        in_memory = run_shares(connection, [Share([])])
        with pytest.raises(ValueError, match="database file"), in_memory:
            pass


def test_workers_cannot_write_the_application_database(numbers: str) -> None:
    sneaky = Share([text("DELETE FROM app.numbers")])
    with create_engine(numbers).connect() as connection:
        writing = run_shares(connection, [sneaky])
        with pytest.raises(OperationalError, match="readonly"), writing:
            pass
        assert connection.execute(text("SELECT COUNT(*) FROM numbers")).scalar_one() == 1000


_ENDLESS = Share(
    [
        text(
            "CREATE TABLE main.slow AS WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
            "SELECT i + 1 FROM c WHERE i < 10000000000) SELECT SUM(i) FROM c"
        )
    ]
)


def test_a_killed_worker_is_an_error_and_stops_the_others(numbers: str) -> None:
    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        while len(multiprocessing.active_children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(multiprocessing.active_children()[0].pid or 0, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker)
    started = time.monotonic()
    with create_engine(numbers).connect() as connection:
        endless = run_shares(connection, [_ENDLESS, _ENDLESS])
        killer.start()
        with pytest.raises(RuntimeError, match=r"exit code -9\) before finishing"), endless:
            pass
    killer.join()
    assert time.monotonic() - started < 60  # the other endless worker was stopped
    assert multiprocessing.active_children() == []


_NO_MAIN_GUARD = """
from sqlalchemy import create_engine
from mixai_ml.db.sqlite_shares import Share, run_shares

with create_engine({url!r}).connect() as connection, run_shares(connection, [Share([])]):
    pass
"""


def test_a_script_without_a_main_guard_gets_an_error_not_a_hang(
    numbers: str, tmp_path: Path
) -> None:
    script = tmp_path / "no_guard.py"
    script.write_text(_NO_MAIN_GUARD.format(url=numbers))
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 1
    assert 'if __name__ == "__main__":' in run.stderr


def test_a_share_that_cannot_be_sent_stops_the_workers_already_started(numbers: str) -> None:
    unsendable = Share([text("SELECT :x").bindparams(x=lambda: 1)])  # a lambda does not pickle
    started = time.monotonic()
    with create_engine(numbers).connect() as connection:
        failing = run_shares(connection, [_ENDLESS, unsendable])
        with pytest.raises((pickle.PicklingError, AttributeError)), failing:
            pass
    assert time.monotonic() - started < 60
    assert multiprocessing.active_children() == []
