"""The database writer: every answer once in ``model_metrics``, through outages, full queues
and leftover journals (CONTRACTS §9), on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest
from service_support import migrated
from sqlalchemy import create_engine, text

from mixai_inference.metrics import MetricRecord, MetricsSink
from mixai_inference.serve import journal
from mixai_inference.serve.store import engine_for, schema_problems
from mixai_inference.serve.writer import DatabaseWriter
from mixai_ml.ingest import ingest_journals


def record(request: int, task: str = "master_reg", user: str | None = "u1") -> MetricRecord:
    return MetricRecord(
        recorded_at=1_767_000_000.0 + request,
        task=task,
        model_version="v1",
        variant="treatment" if user else None,
        source="ml",
        latency_ms=0.05,
        ok=True,
        error=None,
        user_id=user,
        job_id=None,
        prediction={"target_lufs": -14.0},
        request_id=f"req-{request}",
        experiment_id="exp-1" if user else None,
    )


def add(writer: DatabaseWriter, *records: MetricRecord) -> None:
    """Queue one call's records as the service's metrics sink does."""
    MetricsSink(capacity=0, writer=writer).record(*records)


def counts(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        metrics = connection.execute(text("SELECT COUNT(*) FROM model_metrics")).scalar_one()
        distinct = connection.execute(
            text("SELECT COUNT(*) FROM (SELECT DISTINCT task, request_id FROM model_metrics) d")
        ).scalar_one()
        assignments = connection.execute(
            text("SELECT COUNT(*) FROM ab_test_assignments")
        ).scalar_one()
    engine.dispose()
    return metrics, distinct, assignments


def test_rows_are_written_once_with_one_assignment_per_user(db_url: str, tmp_path: Path) -> None:
    url = migrated(db_url)
    writer = DatabaseWriter(engine_for(url), tmp_path / "journal")
    for request in range(50):
        add(writer, record(request), record(request, "preset_cls", user=None))
    add(writer, record(0))  # the same answer again (a client's retry with its id)
    writer.close()
    assert counts(url) == (100, 100, 1)
    assert writer.counts["written"] > 0
    assert writer.counts["journaled"] == 0
    assert writer.answers[("master_reg", "ml", "")] == 51


def test_a_write_takes_what_is_queued_and_returns_under_steady_load(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Calls keep arriving faster than rows are stored: a write must still end (the calls
    that arrive during it wait for the next), not chase a queue that never empties."""
    url = migrated(sqlite_url)
    writer = DatabaseWriter(engine_for(url), tmp_path / "journal", interval_s=60)
    for request in range(200):
        add(writer, record(request))
    stop = threading.Event()

    def arrive() -> None:  # for 10 s at most, so that a write that never ends fails the test
        request, deadline = 1000, time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            add(writer, record(request))
            request += 1

    arrivals = threading.Thread(target=arrive)
    arrivals.start()
    try:
        start = time.monotonic()
        written = writer.flush()
        elapsed = time.monotonic() - start
        still_arriving = arrivals.is_alive()
    finally:
        stop.set()
        arrivals.join()
    assert still_arriving
    assert elapsed < 5.0
    assert written >= 200
    writer.close()
    metrics, distinct, _ = counts(url)
    assert metrics == distinct > written


def test_an_unusable_database_fills_the_journal_which_is_replayed(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = engine_for(sqlite_url)  # no tables yet: every insert fails
    assert "table model_metrics is missing" in schema_problems(engine)
    writer = DatabaseWriter(engine, tmp_path / "journal", interval_s=0.05)
    for request in range(30):
        add(writer, record(request))
    writer.flush()
    assert writer.db_up is False
    assert writer.counts["journaled"] == 30 + 1
    assert writer.journal_bytes() > 0

    migrated(sqlite_url)  # the database is back
    deadline = time.monotonic() + 10
    while writer.journal_bytes() and time.monotonic() < deadline:
        add(writer, record(100))
        time.sleep(0.1)
    writer.close()
    assert writer.journal_bytes() == 0
    assert counts(sqlite_url) == (31, 31, 1)
    assert writer.counts["replayed"] >= 31  # and the record(100) calls journalled meanwhile


def test_a_full_queue_spills_to_the_journal_without_losing_rows(
    sqlite_url: str, tmp_path: Path
) -> None:
    url = migrated(sqlite_url)
    writer = DatabaseWriter(engine_for(url), tmp_path / "journal", max_pending=5, interval_s=60)
    for request in range(20):
        add(writer, record(request, user=f"u{request}"))
    assert writer.counts["spilled"] == 2 * 15  # a metric and an assignment per spilled call
    assert writer.queue_depth == 5
    writer.close()  # writes the queue, then replays the spilled rows
    assert counts(url) == (20, 20, 20)
    assert writer.journal_bytes() == 0


def test_ingest_loads_journals_left_behind_and_skips_held_ones(db_url: str, tmp_path: Path) -> None:
    url = migrated(db_url)
    folder = tmp_path / "journal"
    left = journal.Journal(folder)
    left.append([("model_metrics", record(1).to_row()), ("model_metrics", record(2).to_row())])
    left.seal()
    # a crash tore its last line
    torn = folder / "journal-x-1-1.jsonl"
    torn.write_text(journal.encode([("model_metrics", record(3).to_row())]) + '{"table": "mo')
    held = journal.Journal(folder)
    held.append([("model_metrics", record(4).to_row())])  # a running service's file

    engine = create_engine(url)
    report = ingest_journals(folder, engine)
    assert report["rows"] == {"model_metrics": 3}
    assert len(report["loaded"]) == 2
    assert len(report["held"]) == 1
    assert counts(url)[:2] == (3, 3)
    # loading again (a journal replayed by both a service and ingest) adds nothing
    again = journal.Journal(folder)
    again.append([("model_metrics", record(1).to_row())])
    again.seal()
    ingest_journals(folder, engine)
    assert counts(url)[:2] == (3, 3)
    assert [p.name for p in journal.journal_files(folder)] == [held.path.name]  # type: ignore[union-attr]
    engine.dispose()


def test_a_journal_is_claimed_by_one_process_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "journal-a.jsonl"
    path.write_text(journal.encode([("model_metrics", {"x": 1})]))
    with open(path) as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with journal.claimed(path) as rows:
            assert rows is None
    with journal.claimed(path) as rows:
        assert rows == [("model_metrics", {"x": 1})]
    assert not path.exists()


def test_a_corrupt_journal_line_is_an_error_not_silence() -> None:
    with pytest.raises(ValueError, match="journal:1 is not valid JSON"):
        list(journal.decode('garbage\n{"table": "model_metrics", "row": {}}\n'))
    with pytest.raises(ValueError, match="journal:2 is not a journal line"):
        list(journal.decode('{"table": "model_metrics", "row": {}}\n{"rows": []}'))
