"""Append-only JSONL journals of the rows the database could not take (``MIXAI_JOURNAL_DIR``).

One line per row: ``{"table": "model_metrics" | "ab_test_assignments", "row": {...}}``, the
row as :meth:`MetricRecord.to_row <mixai_inference.metrics.MetricRecord.to_row>` makes it
(timestamps as ISO 8601 UTC text). Files are named ``journal-<host>-<pid>-<ns>.jsonl``.

Ownership is an exclusive ``flock`` on the file: the service holds it on the file it
appends to, and whoever loads a journal (the service replaying, or ``kedro run
--pipelines=ingest``) takes it without waiting, so a file being written is never loaded
and a file is loaded by one process at a time. A loaded file is deleted. Loading is
idempotent (the rows' keys), so a file loaded twice after a crash stores its rows once.
A last line torn by a crash is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final

from mixai_inference.metrics import json_lines

SUFFIX: Final = ".jsonl"

JournalRow = tuple[str, Mapping[str, Any]]
"""``(table, row)``."""


def encode(rows: Iterable[JournalRow]) -> str:
    """The journal lines of ``rows``."""
    return "".join(
        json.dumps({"table": table, "row": row}, separators=(",", ":")) + "\n"
        for table, row in rows
    )


def decode(text: str, where: str = "journal") -> Iterator[JournalRow]:
    """The rows of a journal's text; a torn last line is skipped.

    Raises:
        ValueError: If a line other than a torn last one is not JSON, or if a JSON line is
            not a journal line.
    """
    for number, item in json_lines(text, where):
        try:
            yield str(item["table"]), dict(item["row"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}:{number} is not a journal line") from None


class Journal:
    """The journal file this process appends to (created on the first append, locked)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._handle: IO[str] | None = None
        self.path: Path | None = None

    def append(self, rows: Iterable[JournalRow]) -> int:
        """Append ``rows`` and fsync; returns how many.

        Raises:
            OSError: If the folder cannot be written.
        """
        text = encode(rows)
        if not text:
            return 0
        if self._handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"journal-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}{SUFFIX}"
            self.path = self.directory / name
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            fcntl.flock(self._handle, fcntl.LOCK_EX)
        self._handle.write(text)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return text.count("\n")

    def seal(self) -> None:
        """Stop appending to the current file and release it (to be replayed)."""
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None
            self.path = None


def journal_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The journal files in ``directory``, oldest name first (none if it does not exist)."""
    folder = Path(directory)
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def total_bytes(directory: str | os.PathLike[str]) -> int:
    """The size of every journal file in ``directory``."""
    size = 0
    for path in journal_files(directory):
        try:
            size += path.stat().st_size
        except FileNotFoundError:  # loaded meanwhile
            continue
    return size


@contextmanager
def claimed(path: Path) -> Iterator[list[JournalRow] | None]:
    """The rows of a journal no one else holds, or ``None`` when it is held (or gone).

    The file is deleted when the block ends without an exception: load its rows inside.
    """
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # loaded and deleted by another process meanwhile
            yield None
            return
        yield list(decode(handle.read(), str(path)))
        path.unlink(missing_ok=True)
