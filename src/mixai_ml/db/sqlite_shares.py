"""SELECTs over a SQLite file run in worker processes, one share of the rows each.

SQLite runs a statement on one core (its sorter's threads aside). Where a statement's result
splits into disjoint shares (the A/B sums of different experiments), :func:`run_shares` runs one
process per share. Each worker reads the database file read-only and writes its rows into its
own scratch database; :func:`copy_rows` brings them into the caller's transaction.

The caller holds the database's write lock meanwhile (:func:`hold_write_lock`): other writers
wait, as they would for the serial statement, and the workers read what the caller reads. It
must not write before the workers finish: a write that spills SQLite's page cache takes the
exclusive lock, which shuts the workers out. Rows the caller's transaction holds uncommitted are
passed to the workers as temporary tables, which hide the stored tables of the same name (SQLite
resolves a name in ``temp`` first).

Workers are spawned (not forked: the caller holds open connections and may run threads), and
this module imports nothing heavy, so a worker starts in about a second.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as PipeEnd
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import TextClause

logger = logging.getLogger(__name__)

_COPY_CHUNK = 50_000
"""Rows per ``executemany`` when copying a scratch table into the caller's transaction."""


def prepare_sqlite(connection: Connection) -> None:
    """Sort with a worker thread per core; in builds without the math functions, Python's.

    The results are the same either way (Python's ``math`` follows the C library, as SQLite's
    own functions do); only the speed differs.
    """
    connection.exec_driver_sql(f"PRAGMA threads = {os.cpu_count() or 1}")
    try:
        connection.execute(text("SELECT LN(2.0), FLOOR(1.5), SQRT(2.0)"))
    except OperationalError:  # no such function: ln
        raw: Any = connection.connection.driver_connection
        for name, function in (("ln", math.log), ("floor", math.floor), ("sqrt", math.sqrt)):
            raw.create_function(name, 1, function, deterministic=True)


def database_file(connection: Connection) -> Path | None:
    """The file of a SQLite connection's main database; ``None`` in memory or on other servers."""
    if connection.dialect.name != "sqlite":
        return None
    name = connection.engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def hold_write_lock(connection: Connection) -> None:
    """Begin the caller's transaction with SQLite's write lock (``BEGIN IMMEDIATE``).

    Other writers wait for its commit; readers (the workers) do not. If the transaction has
    already written, it holds that lock already.
    """
    raw: Any = connection.connection.driver_connection
    if not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class Share:
    """One worker's part: statements that fill tables of its scratch database.

    Attributes:
        statements: Run in order, typically ``CREATE TABLE main.<name> AS SELECT …``.
            ``main`` is the worker's scratch database, whose tables the caller reads back;
            plain names resolve in ``temp``, then ``main``, then the application's database
            (attached read-only as ``app``), so a scratch table hides the application's
            table of its name from the statements after it.
        temporary: Tables the statements read as the caller's transaction sees them:
            ``name -> (column definitions, rows)``.
    """

    statements: Sequence[TextClause]
    temporary: dict[str, tuple[str, list[tuple[Any, ...]]]] = field(default_factory=dict)


def _run_share(work: tuple[str, str, Share]) -> float:
    """Worker: the scratch database is the main one; the application's is attached read-only.
    Returns the seconds it took."""
    started = time.perf_counter()
    database, scratch, share = work
    engine = create_engine(f"sqlite:///file:{quote(scratch)}?uri=true", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            prepare_sqlite(connection)
            connection.execute(
                text("ATTACH DATABASE :uri AS app"), {"uri": f"file:{quote(database)}?mode=ro"}
            )
            for name, (columns, rows) in share.temporary.items():
                connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns})")
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    connection.exec_driver_sql(f"INSERT INTO temp.{name} VALUES ({marks})", rows)
            for statement in share.statements:
                connection.execute(statement)
            connection.commit()
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _share_process(work: tuple[str, str, Share], results: PipeEnd) -> None:
    """A worker process: run one share and send back its seconds, or the error it raised."""
    try:
        results.send(("done", _run_share(work)))
    except Exception as error:  # raised again in the caller
        try:
            results.send(("error", error))
        except Exception:  # an error that cannot be pickled: its text
            results.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))


@contextmanager
def run_shares(connection: Connection, shares: Sequence[Share]) -> Iterator[list[Path]]:
    """Run each share in its own process; yield their scratch databases (removed afterwards).

    A worker's error is raised here, as the caller's own statement would have raised it (the
    caller's transaction then rolls back); the other workers are stopped. So is a worker that
    died without an answer (killed, or never started: see ``RuntimeError``).

    Raises:
        ValueError: ``connection`` is not a SQLite database file.
        RuntimeError: A worker process ended without finishing its share.
    """
    database = database_file(connection)
    if database is None:
        raise ValueError("worker processes need a SQLite database file, not memory or a server")
    with TemporaryDirectory(prefix="mixai-shares-") as folder:
        scratch = [Path(folder) / f"share{index}.db" for index in range(len(shares))]
        context = multiprocessing.get_context("spawn")
        workers: dict[PipeEnd, BaseProcess] = {}
        try:
            for path, share in zip(scratch, shares, strict=True):
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_share_process, args=((str(database), str(path), share), sender)
                )
                process.start()
                workers[receiver] = process
                sender.close()
            _wait_for(dict(workers))
        finally:
            for worker in workers.values():
                if worker.is_alive():  # another worker failed: stop this one
                    worker.terminate()
                worker.join()
        yield scratch


def _wait_for(workers: dict[PipeEnd, BaseProcess]) -> None:
    """Log each worker's end as it comes (emptying ``workers``); raise the first error or death."""
    total = len(workers)
    for done in range(1, total + 1):
        ready = wait(list(workers))[0]
        receiver = cast(PipeEnd, ready)
        process = workers.pop(receiver)
        try:
            outcome, value = receiver.recv()
        except EOFError:  # the process ended without a word
            process.join()
            raise RuntimeError(
                f"a worker process ended (exit code {process.exitcode}) before finishing its "
                "share: killed (out of memory?), or it could not start. A script that runs the "
                'analysis must do so under `if __name__ == "__main__":` (processes are '
                "spawned and import the script again)."
            ) from None
        finally:
            receiver.close()
        if outcome == "error":
            raise value
        logger.info("worker %d of %d done in %.1f s", done, total, value)


def _scratch_rows(scratch: Path, table: str, columns: Sequence[str]) -> Iterator[list[Any]]:
    """A scratch database's ``table``, in chunks of rows."""
    with closing(sqlite3.connect(f"file:{quote(str(scratch))}?mode=ro", uri=True)) as source:
        cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
        while chunk := cursor.fetchmany(_COPY_CHUNK):
            yield chunk


def read_rows(scratch: Path, table: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    """A (small) scratch table's rows, as dicts."""
    return [
        dict(zip(columns, row, strict=True))
        for chunk in _scratch_rows(scratch, table, columns)
        for row in chunk
    ]


def copy_rows(connection: Connection, scratch: Path, table: str, columns: Sequence[str]) -> int:
    """Insert a scratch database's ``table`` into the caller's table of that name; rows copied."""
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    copied = 0
    for chunk in _scratch_rows(scratch, table, columns):
        connection.exec_driver_sql(insert, chunk)
        copied += len(chunk)
    return copied
