"""Shared fixtures: SQLite and PostgreSQL application databases.

PostgreSQL: ``MIXAI_TEST_POSTGRES_URL`` when set (a server where the user may
create databases), otherwise a throwaway cluster started here with ``initdb`` +
``pg_ctl`` in a temporary folder on a free port, removed afterwards. Without
either, PostgreSQL tests skip with the reason, except under ``CI=true``, where
they fail: CI must exercise the real database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# helper modules of the whole suite (e.g. project_copy), importable under --import-mode=importlib
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, as the ``postgres`` user when run as root."""

    def __init__(self) -> None:
        initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise FileNotFoundError("initdb/pg_ctl not found (install Debian's postgresql)")
        self._pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="mixai-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root
            shutil.chown(self.root, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self.start_server()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True)

    def start_server(self) -> None:
        """Start (or start again) the server on the same port and data."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.root / "server.log"
        self._run(
            [self._pg_ctl, "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start"]
        )

    def stop_server(self) -> None:
        """Stop the server as a crash would (connections cut), keeping its data."""
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def is_running(self) -> bool:
        done = subprocess.run(
            [*self._as_postgres, self._pg_ctl, "-D", str(self.data), "status"], capture_output=True
        )
        return done.returncode == 0

    def stop(self) -> None:
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> str:
    """URL of a PostgreSQL server whose user may create databases."""
    configured = os.environ.get("MIXAI_TEST_POSTGRES_URL")
    if configured:
        return configured
    cluster: ThrowawayCluster = request.getfixturevalue("throwaway_cluster")
    return cluster.url


@pytest.fixture(scope="session")
def throwaway_cluster() -> Iterator[ThrowawayCluster]:
    """The suite's own PostgreSQL cluster (started once; see :class:`ThrowawayCluster`)."""
    try:
        cluster = ThrowawayCluster()
    except (FileNotFoundError, subprocess.CalledProcessError, KeyError, LookupError) as error:
        detail = getattr(error, "stderr", b"") or b""
        reason = (
            "no PostgreSQL: set MIXAI_TEST_POSTGRES_URL or install Debian's postgresql "
            f"(initdb/pg_ctl) — {error} {detail.decode(errors='replace')}"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def restartable_postgres(throwaway_cluster: ThrowawayCluster) -> Iterator[ThrowawayCluster]:
    """The throwaway cluster, for a test that stops and restarts it (fault tests); running
    again afterwards whatever the test did. Not with ``MIXAI_TEST_POSTGRES_URL``."""
    try:
        yield throwaway_cluster
    finally:
        if not throwaway_cluster.is_running():
            throwaway_cluster.start_server()


@pytest.fixture
def pg_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases (URLs) for one test, dropped afterwards."""
    # pre-ping: a fault test may have restarted the server under the pooled connection
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    names: list[str] = []

    def make() -> str:
        name = f"mixai_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return make_url(postgres_server).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        from mixai_ml.db.engine import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'mixai.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database the project supports: the test runs once per backend."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with its own ``conf/`` and ``data/`` after ``make demo``'s
    sequence on the tiny world (demo_data, purge, the default run); shared by the end-to-end
    and browser tests, built once per session."""
    from project_copy import copy_project, run_pipelines
    from tiny_world import TINY

    project = copy_project(tmp_path_factory.mktemp("tiny-project"))
    run_pipelines(project, ["demo_data", "purge", "__default__"], TINY)
    return project
