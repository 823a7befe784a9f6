"""The purge's places in files: Parquet tables, JSON Lines journals, text that names ids.

Each kind takes the files of one place (the catalog's ``personal_data_files`` lists them,
conf/base/catalog_purge.yml) and removes the targets' data the way its format allows:

* ``parquet``: files with a ``job_id`` and/or ``user_id`` column are rewritten without the
  targets' rows, atomically (a reader sees the old file or the new one);
* ``jsonl``: one JSON object per line, a row of ``model_metrics``, ``ab_test_assignments``, …
  either flat or under a key (the service's journals: ``{"table": …, "row": {…}}``); the
  targets' lines are removed and the file replaced atomically. Lines a writer appends
  meanwhile are carried over. A file that a writer keeps locked (``flock``: the service's
  current journal) is waited for a few seconds; if it still holds the targets' lines then,
  :class:`FileBusy` says so and the next run tries again;
* ``text``: reports and logs that name users or jobs; each id of the targets is overwritten
  in place by ``#`` of the same length, so that the file keeps its size and a process
  appending to it (a log handler) loses nothing.

Adding a kind is one class here and one entry in :data:`FILE_KINDS`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pandas as pd

from mixai_inference._atomic import replace_file, write_synced
from mixai_ml.personalization.store import purge_users_from_bundle
from mixai_ml.privacy.targets import PurgeTargets, count_per_user


class FilePlace(Protocol):
    """A place in files that holds users' data."""

    @property
    def name(self) -> str:
        """The place's name in ``purge_audit.table_name``."""
        ...

    def purge(self, targets: PurgeTargets) -> pd.Series:
        """Remove the targets' data from every file; return what was removed per user."""
        ...


def add_counts(counts: Iterable[pd.Series]) -> pd.Series:
    """Per-user counts summed over several files."""
    found = [series for series in counts if len(series)]
    if not found:
        return pd.Series(dtype="int64")
    return pd.concat(found).groupby(level=0).sum().astype("int64")


LOCK_WAIT_S = 10.0
"""How long a purge waits for a writer's lock on a journal before giving up for this run."""


class FileBusy(RuntimeError):
    """A file holds the targets' data but a writer keeps it locked: it is cleaned next run."""


Decide = Callable[[list[bytes]], list[str | None]]
"""Lines (without their line break) -> for each, the user it belongs to if it goes, else None."""


@dataclass(frozen=True)
class _Files(ABC):
    """The files of one place, cleaned one by one."""

    name: str
    paths: tuple[Path, ...]

    def purge(self, targets: PurgeTargets) -> pd.Series:
        return add_counts(self.purge_file(path, targets) for path in self.paths)

    @abstractmethod
    def purge_file(self, path: Path, targets: PurgeTargets) -> pd.Series:
        """Remove the targets' data from one file; what was removed per user."""


class ParquetRows(_Files):
    """Parquet files whose rows carry a ``job_id`` and/or a ``user_id``."""

    def purge_file(self, path: Path, targets: PurgeTargets) -> pd.Series:
        frame = pd.read_parquet(path)
        if "job_id" not in frame and "user_id" not in frame:
            return pd.Series(dtype="int64")
        remove = targets.rows_to_remove(frame)
        if not remove.any():
            return pd.Series(dtype="int64")
        kept = frame[~remove]
        replace_file(path, lambda staging: kept.to_parquet(staging, index=False))
        return count_per_user(targets.owners(frame[remove]))


class JsonLines(_Files):
    """JSON Lines files (journals): one row per line, with ``job_id`` and/or ``user_id``."""

    def purge_file(self, path: Path, targets: PurgeTargets) -> pd.Series:
        return _rewrite_lines(path, lambda lines: _lines_to_remove(lines, targets))


def _lines_to_remove(lines: Sequence[bytes], targets: PurgeTargets) -> list[str | None]:
    """For each line, the user it belongs to if it goes, else ``None`` (a :data:`Decide`).

    A JSON object goes by the purge's rule on its ``job_id``/``user_id``; a line that is not
    one (torn by a crash) goes when it names an id of the targets.
    """
    rows: list[dict[str, object]] = []
    parsed: list[int] = []
    owners: list[str | None] = [None] * len(lines)
    for number, line in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(_row_ids(row))
            parsed.append(number)
        else:
            named = targets.id_tokens.find(line)
            owners[number] = named[0][2] if named else None
    if rows:
        frame = pd.DataFrame(rows, index=parsed)
        remove = targets.rows_to_remove(frame)
        for number, owner in targets.owners(frame[remove]).items():
            owners[int(number)] = str(owner)
    return owners


def _row_ids(item: dict[str, object]) -> dict[str, object]:
    """The ``job_id``/``user_id`` of a JSON object, or of the rows nested in it."""
    ids: dict[str, object] = {}
    for row in (item, *(value for value in item.values() if isinstance(value, dict))):
        ids |= {key: row[key] for key in ("job_id", "user_id") if key in row}
    return ids


def _lock(handle: BinaryIO, wait_s: float) -> bool:
    """Take an exclusive ``flock`` on ``handle`` within ``wait_s`` seconds; whether it did."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _filter(data: bytes, decide: Decide) -> tuple[bytes, list[str]]:
    """The kept lines of ``data`` and the owners of the removed ones."""
    lines = data.splitlines(keepends=True)
    owners = decide([line.rstrip(b"\r\n") for line in lines]) if lines else []
    kept = b"".join(line for line, owner in zip(lines, owners, strict=True) if owner is None)
    return kept, [owner for owner in owners if owner is not None]


def _complete_lines(data: bytes) -> tuple[bytes, bytes]:
    """``data`` split after its last line break: the complete lines and the rest."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


def _rewrite_lines(path: Path, decide: Decide) -> pd.Series:
    """Rewrite ``path`` without the lines ``decide`` removes; removed lines per user.

    Lines appended while it works (by a writer that does not take the lock) are read until
    the file stops growing and filtered too; a last line without a line break (torn by a
    crash) is judged as it is.
    """
    kept, removed = b"", list[str]()
    with open(path, "rb") as handle:
        if not _lock(handle, LOCK_WAIT_S):
            if _filter(handle.read(), decide)[1]:
                raise FileBusy(f"{path} is locked by a writer: its lines of withdrawn users stay")
            return pd.Series(dtype="int64")
        try:
            rest = b""
            while True:
                complete, rest = _complete_lines(rest + handle.read())
                lines, gone = _filter(complete, decide)
                kept, removed = kept + lines, removed + gone
                if os.stat(path).st_size <= handle.tell():
                    break
            lines, gone = _filter(rest, decide)
            kept, removed = kept + lines, removed + gone
            if removed:
                replace_file(path, lambda staging: write_synced(staging, kept))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return count_per_user(pd.Series(removed, dtype="string"))


class MaskedText(_Files):
    """Text files (Markdown reports, logs) that name users or jobs."""

    def purge_file(self, path: Path, targets: PurgeTargets) -> pd.Series:
        with open(path, "r+b") as handle:
            found = targets.id_tokens.find(handle.read())
            for start, end, _ in found:
                handle.seek(start)
                handle.write(b"#" * (end - start))
            handle.flush()
            os.fsync(handle.fileno())
        return count_per_user(pd.Series([owner for _, _, owner in found], dtype="string"))


class BundleAdapters(_Files):
    """A bundle's per-user model parameters (``user_adapters.json``): a record per user; the
    bundle is rewritten with its manifest's SHA-256."""

    def purge_file(self, path: Path, targets: PurgeTargets) -> pd.Series:
        return purge_users_from_bundle(path.parent, set(targets.users))


FILE_KINDS: dict[str, Callable[[str, tuple[Path, ...]], FilePlace]] = {
    "parquet": ParquetRows,
    "adapters": BundleAdapters,
    "jsonl": JsonLines,
    "text": MaskedText,
}
"""The ``kind`` of a place in the catalog -> the class that purges its files."""
