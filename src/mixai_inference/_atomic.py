"""Durable writes: fsynced files, a file or a folder replaced whole by a rename.

A reader sees the complete old file or folder or the complete new one (a folder: for the
instant between the two renames, none), never a mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Replace the file ``path`` by what ``write`` writes to the staging path it is given
    (beside ``path``, removed if anything fails)."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    # Directories cannot be opened for fsync on every platform (e.g. Windows); best effort.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(staging: Path, target: Path) -> None:
    """Replace the folder ``target`` (if any) by ``staging``; the old one is put back if the
    rename fails."""
    previous = None
    if target.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        previous.rmdir()
        os.rename(target, previous)
    try:
        os.rename(staging, target)
    except BaseException:
        if previous is not None:
            os.rename(previous, target)
        raise
    fsync_dir(target.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
