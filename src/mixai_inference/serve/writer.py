"""Every answer in the database: a bounded queue, a background batch writer, a journal.

:class:`DatabaseWriter` is the metrics sink's writer (:class:`~mixai_inference.metrics.
RecordWriter`) in the service. A request only appends one small entry to a queue; a
background thread turns entries into ``model_metrics`` rows (one per task answered) and
``ab_test_assignments`` rows (the first routing of a user in an experiment) and inserts
them in batches (:func:`~mixai_inference.serve.store.write_rows`, idempotent).

Policy, so that the answer never waits for the database and no row is lost:

* **Database down** (connection refused, timeout, missing table): the batch goes to the
  journal (:mod:`mixai_inference.serve.journal`); the database is retried after 1 s,
  then with doubling waits up to ``max_retry_s`` (at once when the control refresh reaches
  it, and once more at shutdown). Once it takes rows again, the journal files (this
  process's and any left behind by others) are replayed and deleted.
* **Queue full** (``max_pending`` calls waiting): the request's own thread writes its
  rows straight to the journal, a local file append, and the spill is counted. Nothing
  is dropped and nobody waits for the database.
* **A row the database refuses** (a constraint other than the key): the batch is retried
  row by row; a refused row is kept in ``rejected-*.jsonl.rejected`` beside the journals
  and counted, never retried forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from mixai_inference.metrics import Entry, MetricRecord, expand_entries
from mixai_inference.serve import journal as journals
from mixai_inference.serve.journal import Journal, JournalRow
from mixai_inference.serve.store import write_rows

logger = logging.getLogger(__name__)


def _json(value: Any) -> str:
    """JSON text by ``orjson`` (a fifth of the standard library's time on a prediction)."""
    return orjson.dumps(value, default=dict).decode()


REPLAY_CHUNK = 5000
"""Journal rows inserted per transaction when replaying."""


class DatabaseWriter:
    """Writes the metrics sink's entries to the database, or to the journal when it cannot.

    Args:
        engine: The application database.
        journal_dir: Where journals go (``MIXAI_JOURNAL_DIR``).
        max_pending: Calls queued at most before requests spill to the journal.
        batch_calls: Calls written per transaction: few, so that a batch's Python work
            (about 1 ms) holds the GIL only briefly.
        pause_s: The pause after each batch while more are queued. It hands the GIL back
            to the requests: every onnxruntime run releases it, and a thread that wants it
            back from a busy thread waits up to Python's switch interval (5 ms).
        interval_s: How often the queue is written: what is queued then, so that under
            load the writer works in bursts and leaves the requests the rest.
        max_retry_s: Longest wait between attempts while the database is down.
        remembered_assignments: ``(experiment, user)`` pairs remembered as recorded, so
            that a returning user costs no insert (forgetting one only repeats an
            idempotent insert).
    """

    def __init__(
        self,
        engine: Engine,
        journal_dir: str | Path,
        *,
        max_pending: int = 20_000,
        batch_calls: int = 64,
        pause_s: float = 0.001,
        interval_s: float = 0.1,
        max_retry_s: float = 5.0,
        remembered_assignments: int = 200_000,
    ) -> None:
        self.engine = engine
        self.journal_dir = Path(journal_dir)
        self._journal = Journal(self.journal_dir)
        self._pending: deque[Entry] = deque()
        self._max_pending = max_pending
        self._batch_calls = batch_calls
        self._pause = pause_s
        self._interval = interval_s
        self._max_retry = max_retry_s
        self._lock = threading.Lock()  # the queue
        self._journal_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one drain at a time
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._remember = remembered_assignments
        self.db_up: bool | None = None
        """Whether the last write reached the database (``None``: not tried yet)."""
        self.db_error: str | None = None
        self._retry_at = 0.0
        self._retry_wait = 1.0
        self._replay_due = True
        self.counts: Counter[str] = Counter()
        """Rows ``written``, ``journaled``, ``spilled``, ``replayed``, ``rejected``, ``lost``."""
        self.answers: Counter[tuple[str, str, str]] = Counter()
        """Answers by (task, source, reason)."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mixai-db-writer", daemon=True)
        self._thread.start()

    # --- the request side --------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Queue one call's entry; when the queue is full, journal its rows here."""
        with self._lock:
            if len(self._pending) < self._max_pending:
                self._pending.append(entry)
                return
        rows = self._rows([entry])
        self._to_journal(rows)
        self.counts["spilled"] += len(rows)

    @property
    def queue_depth(self) -> int:
        """Calls waiting to be written."""
        return len(self._pending)

    def journal_bytes(self) -> int:
        """The size of the journals waiting to be replayed."""
        return journals.total_bytes(self.journal_dir)

    # --- the writer thread -------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is queued now (and replay journals if the database is back)."""
        return self._drain()

    def retry_now(self) -> None:
        """Try the database at the next write, whatever the back-off (it answered elsewhere)."""
        if self.db_up is False:
            self._retry_at = 0.0
            self._wake.set()

    def close(self) -> None:
        """Stop the thread and write what is queued (idempotent); the database gets a last
        try whatever the back-off, and what it does not take stays in the journal."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._retry_at = 0.0
        self._drain()
        with self._journal_lock:
            self._journal.seal()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # the writer must outlive anything
                logger.exception("metrics writer: unexpected error; retrying")

    def _drain(self) -> int:
        written = 0
        with self._write_lock:
            left = len(self._pending)  # what is queued now: under load the queue never empties
            while left > 0:
                with self._lock:
                    count = min(left, len(self._pending), self._batch_calls)
                    batch = [self._pending.popleft() for _ in range(count)]
                if not batch:
                    break
                left -= count
                written += self._store(self._rows(batch))
                if left > 0 and not self._stop.is_set():
                    time.sleep(self._pause)
            if self._replay_due and self._database_usable():
                self._replay()
        return written

    def _rows(self, entries: Sequence[Entry]) -> list[JournalRow]:
        """The rows of some calls: each record, and the assignments not recorded yet."""
        rows: list[JournalRow] = []
        for record in expand_entries(entries):
            rows.append(("model_metrics", record.to_row(_json)))
            self.answers[(record.task, record.source, record.error or "")] += 1
            assignment = self._assignment(record)
            if assignment is not None:
                rows.append(("ab_test_assignments", assignment))
        return rows

    def _assignment(self, record: MetricRecord) -> dict[str, Any] | None:
        if record.experiment_id is None or record.user_id is None or record.variant is None:
            return None
        key = (record.experiment_id, record.user_id)
        with self._seen_lock:
            if key in self._seen:
                return None
            self._seen[key] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        row = record.to_row()
        return {
            "experiment_id": record.experiment_id,
            "user_id": record.user_id,
            "variant": record.variant,
            "assigned_at": row["recorded_at"],
        }

    def _database_usable(self) -> bool:
        return self.db_up is not False or time.monotonic() >= self._retry_at

    def _store(self, rows: list[JournalRow]) -> int:
        if self._database_usable():
            try:
                write_rows(self.engine, rows)
            except IntegrityError:
                return self._store_one_by_one(rows)
            except SQLAlchemyError as exc:
                self._went_down(exc)
            else:
                self._came_up()
                self.counts["written"] += len(rows)
                return len(rows)
        self._to_journal(rows)
        self.counts["journaled"] += len(rows)
        return 0

    def _store_one_by_one(self, rows: list[JournalRow]) -> int:
        written = 0
        for row in rows:
            try:
                write_rows(self.engine, [row])
                written += 1
            except IntegrityError as exc:
                self._reject(row, exc)
            except SQLAlchemyError as exc:
                self._went_down(exc)
                self._to_journal([row])
                self.counts["journaled"] += 1
        self.counts["written"] += written
        return written

    def _reject(self, row: JournalRow, exc: DBAPIError) -> None:
        path = self.journal_dir / f"rejected-{int(time.time())}.jsonl.rejected"
        logger.error("the database refused a %s row (kept in %s): %s", row[0], path, exc.orig)
        try:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(journals.encode([row]))
            self.counts["rejected"] += 1
        except OSError:
            self.counts["lost"] += 1

    def _to_journal(self, rows: list[JournalRow]) -> None:
        try:
            with self._journal_lock:
                self._journal.append(rows)
        except OSError as exc:  # nowhere left to keep them
            self.counts["lost"] += len(rows)
            logger.error(
                "cannot write the journal in %s: %s; %d rows lost", self.journal_dir, exc, len(rows)
            )
        self._replay_due = True

    def _went_down(self, exc: SQLAlchemyError) -> None:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if self.db_up is not False:
            logger.warning("the database does not take rows (%s); journalling them", message)
            self._retry_wait = 1.0
        else:
            self._retry_wait = min(2 * self._retry_wait, self._max_retry)
        self.db_up, self.db_error = False, message
        self._retry_at = time.monotonic() + self._retry_wait

    def _came_up(self) -> None:
        if self.db_up is False:
            logger.warning("the database takes rows again; replaying the journals")
            self._replay_due = True
        self.db_up, self.db_error = True, None

    def _replay(self) -> None:
        """Load every journal no one holds (this process's own once sealed) and delete it."""
        with self._journal_lock:
            self._journal.seal()
        for path in journals.journal_files(self.journal_dir):
            try:
                with journals.claimed(path) as rows:
                    if rows is None:
                        continue
                    for start in range(0, len(rows), REPLAY_CHUNK):
                        write_rows(self.engine, rows[start : start + REPLAY_CHUNK])
                    self.counts["replayed"] += len(rows)
                    logger.info("replayed %d rows from %s", len(rows), path.name)
            except IntegrityError as exc:
                logger.error("%s holds rows the database refuses (%s); left there", path, exc.orig)
            except SQLAlchemyError as exc:
                self._went_down(exc)
                return
            except ValueError as exc:  # not a journal: leave it for a person
                logger.error("%s", exc)
        self._replay_due = False
        self._came_up()
