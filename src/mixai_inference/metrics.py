"""Metrics sink: one ``model_metrics`` record per online answer (docs/data_contracts.md §5).

Every answer of the predictor, model or rules, is recorded as a :class:`MetricRecord`
into a bounded in-memory ring buffer (the last ``capacity`` calls, for health checks
and tests) and, when a JSONL path is given, appended to a JSON Lines file by a
background thread (batched, so that a prediction never waits for the disk).

Each JSONL line is one ``model_metrics`` row::

    {"recorded_at": "2025-01-10T03:00:00.123456+00:00", "task": "master_reg",
     "model_version": "20250110-a1b2", "variant": "treatment", "source": "ml",
     "latency_ms": 0.041, "ok": true, "error": null, "user_id": "u1", "job_id": "j1",
     "prediction": "{\\"target_lufs\\": -14.0, ...}", "request_id": "9f1c…",
     "experiment_id": null, "ood_score": 0.42, "ood": false, "input_sketch": "1:0457…|39…"}

``ok`` is false only when a failure made the rules answer (a reason in
:data:`mixai_inference.predictor.FAILURE_REASONS`); ``error`` holds the fallback reason
whenever the rules answered (``disabled``, ``rollout``, … are deliberate: ``ok`` stays true).
``prediction`` is JSON text shaped like the task's label, so that ``monitoring`` can
compare it with ``labels``.

Loading a file into the table happens on the Kedro side, where pandas and SQLAlchemy
exist: read it with ``pandas.read_json(path, lines=True, dtype=False)``, parse
``recorded_at`` with ``pandas.to_datetime(..., utc=True, format="ISO8601")`` and append
with ``DataFrame.to_sql("model_metrics", engine, if_exists="append", index=False)``
(the recipe is in ``docs/deployment.md``; ``tests/inference/test_metrics_sink.py`` runs
it). :func:`read_metrics_jsonl` gives the rows as dicts without pandas and skips a last
line torn by a crash.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

logger = logging.getLogger(__name__)

ENV_JSONL_PATH: Final = "MIXAI_METRICS_JSONL"
"""Environment variable: where :meth:`MetricsSink.from_env` appends JSONL records."""


class MetricRecord(NamedTuple):
    """What happened in one answer of one task (a ``model_metrics`` row).

    ``recorded_at`` is POSIX seconds (UTC); ``prediction`` the answer, label-shaped.
    A named tuple: immutable and cheap to make on the prediction path.
    """

    recorded_at: float
    task: str
    model_version: str | None
    variant: str | None
    source: str
    latency_ms: float
    ok: bool
    error: str | None
    user_id: str | None
    job_id: str | None
    prediction: Mapping[str, Any] | None
    request_id: str | None = None
    """The request answered; with ``task``, the row's key (idempotent ingestion)."""
    experiment_id: str | None = None
    """The experiment that routed the answer, if any."""
    ood_score: float | None = None
    """The input's out-of-distribution score (:mod:`mixai_inference.ood`), if scored."""
    ood: bool | None = None
    input_sketch: str | None = None
    """The input's and the model output's deciles among the training values
    (:func:`~mixai_inference.ood.format_sketch`), if scored."""

    def to_row(self, encode: Callable[[Any], str] | None = None) -> dict[str, Any]:
        """The ``model_metrics`` row: ISO 8601 UTC time, ``prediction`` as JSON text
        (``encode``: a faster JSON encoder, e.g. the service's orjson)."""
        row = self._asdict()
        row["recorded_at"] = datetime.fromtimestamp(self.recorded_at, UTC).isoformat()
        if self.prediction is not None:
            row["prediction"] = (encode or _encode_json)(self.prediction)
        return row


_encode_json = json.JSONEncoder(default=dict).encode  # default=dict: read-only mappings inside


MODEL_METRICS_COLUMNS: Final = MetricRecord._fields
"""The columns of ``model_metrics``, in schema order."""


Entry = tuple[Callable[[Sequence[Any]], Sequence[MetricRecord]], Any]
"""What the sink stores per call: ``(build, payload)``; ``build(payloads)`` makes the records
of a batch of calls' payloads, in order.

Making :class:`MetricRecord` objects (and their JSON and sketches) only when they are read,
a batch at a time, keeps the prediction path to one small tuple per call."""


def _unchanged(payloads: Sequence[Sequence[MetricRecord]]) -> list[MetricRecord]:
    return [record for records in payloads for record in records]


def expand_entries(entries: Iterable[Entry]) -> list[MetricRecord]:
    """The records of calls' entries, in order; consecutive entries of one ``build`` are
    built in one call."""
    records: list[MetricRecord] = []
    for build, group in itertools.groupby(entries, key=itemgetter(0)):
        records.extend(build([payload for _, payload in group]))
    return records


class RecordWriter(Protocol):
    """Where a :class:`MetricsSink` sends each call's entry: :class:`JsonlWriter`, or the
    service's database writer (:mod:`mixai_inference.serve.writer`)."""

    def add(self, entry: Entry) -> None:
        """Take one call's entry; cheap, never blocks on I/O."""

    def flush(self) -> int:
        """Write what is queued now; how many records were written."""

    def close(self) -> None:
        """Write what is queued and stop."""


class JsonlWriter:
    """Appends records to a JSON Lines file from a background thread.

    Calls' entries wait in a bounded queue (``max_pending`` calls; beyond it the oldest
    are dropped and counted in :attr:`dropped`) and are written every
    ``flush_interval_s`` seconds, on :meth:`flush`, and at interpreter exit. A write error
    is logged once per kind and the batch counted as dropped; it never reaches the caller
    of :meth:`add`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval_s: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        if max_pending < 1 or flush_interval_s <= 0:
            raise ValueError("max_pending must be >= 1 and flush_interval_s > 0")
        self.path = Path(path)
        self._pending: deque[Entry] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._dropped = 0
        self._warned: set[str] = set()
        self._interval = flush_interval_s
        self._thread = threading.Thread(
            target=self._run, name=f"mixai-metrics-{self.path.name}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    @property
    def dropped(self) -> int:
        """Calls whose records were lost to a full queue, and records to a failed write."""
        return self._dropped

    def add(self, entry: Entry) -> None:
        """Queue one call's entry for writing (cheap; never blocks on I/O)."""
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self._dropped += 1
            self._pending.append(entry)

    def flush(self) -> int:
        """Write every queued record now; returns how many were written."""
        with self._write_lock:
            with self._lock:
                entries = list(self._pending)
                self._pending.clear()
            batch = expand_entries(entries)
            if not batch:
                return 0
            text = "".join(json.dumps(r.to_row(), separators=(",", ":")) + "\n" for r in batch)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(text)
            except OSError as exc:
                with self._lock:
                    self._dropped += len(batch)
                if type(exc).__name__ not in self._warned:
                    self._warned.add(type(exc).__name__)
                    logger.warning("cannot append metrics to %s: %s", self.path, exc)
                return 0
            return len(batch)

    def close(self) -> None:
        """Stop the background thread and write what is queued (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


class MetricsSink:
    """Thread-safe recorder of :class:`MetricRecord`: a ring buffer plus an optional JSONL file.

    Args:
        capacity: How many of the latest calls (a ``predict`` makes two records, an
            ``align`` one) the ring buffer keeps; 0 keeps none (for a ``writer`` that
            receives every call).
        jsonl_path: Append every record to this JSON Lines file (see :class:`JsonlWriter`).
        flush_interval_s: How often the JSONL writer writes.
        writer: Send every call's records there instead (e.g. the service's database
            writer); excludes ``jsonl_path``.
    """

    def __init__(
        self,
        capacity: int = 10_000,
        jsonl_path: str | os.PathLike[str] | None = None,
        *,
        flush_interval_s: float = 1.0,
        writer: RecordWriter | None = None,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be 0 or more, got {capacity}")
        if writer is not None and jsonl_path is not None:
            raise ValueError("give jsonl_path or writer, not both")
        self._ring: deque[Entry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._count = 0
        self.writer: RecordWriter | None = (
            JsonlWriter(jsonl_path, flush_interval_s=flush_interval_s)
            if jsonl_path is not None
            else writer
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsSink:
        """A sink that also writes JSONL to ``$MIXAI_METRICS_JSONL`` when that is set."""
        path = (os.environ if environ is None else environ).get(ENV_JSONL_PATH, "").strip()
        return cls(jsonl_path=path or None)

    def record(self, *records: MetricRecord) -> None:
        """Keep one call's ``records`` in the ring buffer and queue them for the JSONL file."""
        self.record_lazy(_unchanged, records, len(records))

    def record_lazy(
        self, build: Callable[[Sequence[Any]], Sequence[MetricRecord]], payload: Any, count: int
    ) -> None:
        """Record the ``count`` records that ``build([payload])`` makes, made only when read.

        ``payload`` must not change afterwards (the predictor passes a tuple of immutable
        values).
        """
        entry = (build, payload)
        with self._lock:
            self._ring.append(entry)
            self._count += count
        if self.writer is not None:
            self.writer.add(entry)

    @property
    def total(self) -> int:
        """Records received since creation (the ring buffer keeps only the latest)."""
        return self._count

    def records(self) -> list[MetricRecord]:
        """The records of the calls in the ring buffer, oldest first."""
        with self._lock:
            entries = list(self._ring)
        return expand_entries(entries)

    def flush(self) -> int:
        """Write queued records to the JSONL file now (0 without a file)."""
        return 0 if self.writer is None else self.writer.flush()

    def close(self) -> None:
        """Flush and stop the JSONL writer, if any."""
        if self.writer is not None:
            self.writer.close()


def read_metrics_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The rows of a metrics JSONL file; a torn last line (crash mid-write) is skipped.

    Raises:
        ValueError: If a line other than the last is not a JSON object.
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    for number, row in json_lines(text, str(path)):
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number} is not a JSON object")
        yield row


def json_lines(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of JSON Lines ``text``.

    A last line that a crash tore (not JSON, no newline after it) is skipped with a warning.

    Raises:
        ValueError: If any other line is not JSON (naming ``where`` and the line).
    """
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                logger.warning("%s: skipping a last line torn by a crash", where)
                return
            raise ValueError(f"{where}:{number} is not valid JSON") from None
        yield number, value
