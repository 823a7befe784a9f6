"""Benchmark of the ``ab_analysis`` pipeline: 10 million assignments × 3 metrics.

Usage (from the project root; not part of CI: loading 30 million rows takes minutes)::

    .venv/bin/python benchmarks/bench_ab_analysis.py sqlite --db /tmp/ab_bench.db
    .venv/bin/python benchmarks/bench_ab_analysis.py postgres --pgdata /tmp/ab_bench_pg

``sqlite`` loads the data into the file (unless it already holds it; ``--reload`` forces it) and
measures. ``postgres`` starts a throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``, as the
``postgres`` user when run as root, ``random_page_cost=1.1`` as for SSDs, other settings default),
loads, measures and removes the cluster (``--keep`` leaves it running). ``--users`` changes the
size, ``--pre`` adds a ``latency_ms__pre`` covariate (CUPED) for every user.

Data: one experiment, 50/50 ``control``/``treatment``; per user one row of ``accepted`` (0/1),
``param_mae`` and ``latency_ms`` with known effects, through the project's migrated schema. Rows
are written in time order within blocks of one million users (as an application appends them),
SQLite with ``executemany`` (the secondary index rebuilt afterwards), PostgreSQL with ``COPY``.

Measurement: the ``ab_analysis`` Kedro pipeline (the project's catalog entries and parameters,
file outputs redirected to a temporary folder) runs in a fresh child process; reported are its
wall time, the part spent in the three SQL queries, and the child's peak resident memory
(``VmHWM``, which includes SQLite's in-process work; PostgreSQL's server processes are not
included).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "bench_exp"
START = np.datetime64("2026-03-01T00:00:00", "s")
DAYS = 28
BLOCK = 1_000_000
QUERIES = ("ab_assignment_counts", "ab_metric_daily_stats", "ab_covariate_daily_stats")


def _blocks(n_users: int, seed: int, pre: bool) -> Iterator[dict[str, np.ndarray]]:
    """Assignment and metric rows, block by block, metric rows sorted by time within a block."""
    rng = np.random.default_rng(seed)
    for first in range(0, n_users, BLOCK):
        n = min(BLOCK, n_users - first)
        users = np.char.add("u", np.char.zfill(np.arange(first, first + n).astype(str), 9))
        treated = rng.random(n) < 0.5
        assigned = START + rng.integers(0, DAYS * 86_400, n).astype("timedelta64[s]")
        pre_latency = rng.lognormal(4.0, 0.5, n)
        values = {
            "accepted": (rng.random(n) < np.where(treated, 0.31, 0.30)).astype(float),
            "param_mae": rng.gamma(2.0, 1.0, n) * np.where(treated, 0.98, 1.0),
            "latency_ms": 0.7 * pre_latency + rng.lognormal(3.0, 0.5, n) + treated,
        }
        if pre:
            values["latency_ms__pre"] = pre_latency
        names = list(values)
        metric = np.repeat(np.array(names), n)
        stamp = np.concatenate(
            [
                assigned
                - np.timedelta64(7 * 86_400, "s")
                + rng.integers(0, 3600, n).astype("timedelta64[s]")
                if name.endswith("__pre")
                else assigned + rng.integers(1, 3600, n).astype("timedelta64[s]")
                for name in names
            ]
        )
        order = np.argsort(stamp, kind="stable")
        yield {
            "user_id": users,
            "variant": np.where(treated, "treatment", "control"),
            "assigned_at": assigned,
            "m_user_id": np.tile(users, len(names))[order],
            "m_metric": metric[order],
            "m_value": np.concatenate([values[name] for name in names])[order],
            "m_recorded_at": stamp[order],
        }


def _stamps(stamp: np.ndarray, suffix: str) -> list[str]:
    """``YYYY-MM-DD HH:MM:SS`` + ``suffix`` (SQLAlchemy's SQLite format, or a UTC offset)."""
    text = np.char.replace(np.datetime_as_string(stamp, unit="s"), "T", " ")
    return np.char.add(text, suffix).tolist()


def load_sqlite(engine: Engine, n_users: int, seed: int, pre: bool) -> None:
    """Bulk-load with ``executemany``; the metrics index is dropped and rebuilt around it."""
    from mixai_ml.db import schema

    index = next(iter(schema.ab_test_metrics.indexes))
    with engine.begin() as connection:
        index.drop(connection, checkfirst=True)
        connection.execute(schema.ab_test_metrics.delete())
        connection.execute(schema.ab_test_assignments.delete())
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()  # sqlite3's executemany takes any iterable
        cursor.execute("PRAGMA synchronous=OFF")
        for block in _blocks(n_users, seed, pre):
            cursor.executemany(
                "INSERT INTO ab_test_assignments VALUES (?, ?, ?, ?)",
                zip(
                    [EXPERIMENT] * len(block["user_id"]),
                    block["user_id"].tolist(),
                    block["variant"].tolist(),
                    _stamps(block["assigned_at"], ".000000"),
                    strict=True,
                ),
            )
            cursor.executemany(
                "INSERT INTO ab_test_metrics VALUES (?, ?, ?, ?, ?)",
                zip(
                    [EXPERIMENT] * len(block["m_user_id"]),
                    block["m_user_id"].tolist(),
                    block["m_metric"].tolist(),
                    block["m_value"].tolist(),
                    _stamps(block["m_recorded_at"], ".000000"),
                    strict=True,
                ),
            )
            raw.commit()
            print(f"  +{len(block['user_id']):,} users", flush=True)
    finally:
        raw.close()
    with engine.begin() as connection:
        index.create(connection)


def _copy(cursor: Any, table: str, columns: list[list[str]]) -> None:
    buffer = io.StringIO()
    buffer.writelines("\t".join(row) + "\n" for row in zip(*columns, strict=True))
    with cursor.copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def load_postgres(engine: Engine, n_users: int, seed: int, pre: bool) -> None:
    """Bulk-load with ``COPY ... FROM STDIN``, then ``ANALYZE``."""
    from mixai_ml.db import schema

    with engine.begin() as connection:
        connection.execute(schema.ab_test_metrics.delete())
        connection.execute(schema.ab_test_assignments.delete())
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for block in _blocks(n_users, seed, pre):
            n, rows = len(block["user_id"]), len(block["m_user_id"])
            _copy(
                cursor,
                "ab_test_assignments",
                [
                    [EXPERIMENT] * n,
                    block["user_id"].tolist(),
                    block["variant"].tolist(),
                    _stamps(block["assigned_at"], "+00"),
                ],
            )
            _copy(
                cursor,
                "ab_test_metrics",
                [
                    [EXPERIMENT] * rows,
                    block["m_user_id"].tolist(),
                    block["m_metric"].tolist(),
                    [repr(v) for v in block["m_value"].tolist()],
                    _stamps(block["m_recorded_at"], "+00"),
                ],
            )
            raw.commit()
            print(f"  +{n:,} users", flush=True)
        cursor.execute("ANALYZE ab_test_assignments")
        cursor.execute("ANALYZE ab_test_metrics")
        raw.commit()
    finally:
        raw.close()


def _user_count(engine: Engine) -> int:
    from sqlalchemy import func, select

    from mixai_ml.db import schema

    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(schema.ab_test_assignments)
            ).scalar_one()
        )


def child(url: str) -> None:
    """Run the pipeline once (in this fresh process) and print its timings as JSON."""
    import yaml
    from kedro.io import DataCatalog
    from kedro.runner import SequentialRunner

    from mixai_ml.pipelines.ab_analysis.pipeline import create_pipeline

    started = time.perf_counter()
    pipeline = create_pipeline()
    config: dict[str, Any] = {}
    for name in ("catalog.yml", "catalog_ab_analysis.yml"):
        config.update(yaml.safe_load((PROJECT_ROOT / "conf" / "base" / name).read_text()))
    config = {k: dict(v) for k, v in config.items() if k in pipeline.datasets()}
    out = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    for entry in config.values():
        if "filepath" in entry:
            entry["filepath"] = str(out / Path(entry["filepath"]).name)
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ab_analysis.yml").read_text())
    catalog = DataCatalog.from_config(config, {"mixai_db": {"con": url}})
    catalog["params:ab_analysis"] = params["ab_analysis"]

    query_seconds: dict[str, float] = {}
    for name in QUERIES:  # timed loads through the same datasets; the runner then reloads them
        t0 = time.perf_counter()
        frame = catalog.load(name)
        query_seconds[name] = round(time.perf_counter() - t0, 2)
        catalog[name] = frame  # the pipeline runs on these frames: no second query
    t0 = time.perf_counter()
    SequentialRunner().run(pipeline, catalog)
    analysis = time.perf_counter() - t0
    results = (out / "ab_test_results.csv").read_text().count("\n") - 1
    shutil.rmtree(out, ignore_errors=True)
    # VmHWM: this process's peak RSS (getrusage's maxrss would include the parent's before exec)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    print(
        json.dumps(
            {
                "queries_s": query_seconds,
                "analysis_and_outputs_s": round(analysis, 2),
                "pipeline_s": round(sum(query_seconds.values()) + analysis, 2),
                "child_total_s": round(time.perf_counter() - started, 2),
                "result_rows": results,
                "peak_rss_mb": round(peak_kb / 1024),
            }
        )
    )


def measure(url: str) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and add its wall time (imports included)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "_child", url],
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"},
    )
    wall = time.perf_counter() - t0
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return {**timings, "process_wall_s": round(wall, 2)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise SystemExit(
            f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)"
        )
    return str(found)


@contextmanager
def throwaway_postgres(root: Path, keep: bool = False) -> Iterator[str]:
    """A PostgreSQL cluster in ``root`` (as ``postgres`` when root), tuned as for SSDs; its URL.

    Removed afterwards unless ``keep``.
    """
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root.mkdir(parents=True, exist_ok=True)
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    data = root / "data"
    subprocess.run(
        [
            *as_postgres,
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c random_page_cost=1.1 -c max_wal_size=8GB"
    )
    subprocess.run(
        [
            *as_postgres,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if not keep:
            subprocess.run(
                [*as_postgres, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                capture_output=True,
            )
            shutil.rmtree(root, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> dict[str, Any]:
    with throwaway_postgres(Path(args.pgdata), args.keep) as url:
        from mixai_ml.db import get_engine

        t0 = time.perf_counter()
        load_postgres(get_engine(url), args.users, args.seed, args.pre)
        load_s = time.perf_counter() - t0
        return {"backend": "postgresql 15", "load_s": round(load_s), "url": url, **measure(url)}


def run_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    from mixai_ml.db import get_engine

    url = f"sqlite:///{Path(args.db).resolve()}"
    engine = get_engine(url)
    load_s = None
    if args.reload or _user_count(engine) != args.users:
        t0 = time.perf_counter()
        load_sqlite(engine, args.users, args.seed, args.pre)
        load_s = round(time.perf_counter() - t0)
    engine.dispose()
    return {"backend": "sqlite", "load_s": load_s, **measure(url)}


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="backend", required=True)
    for name in ("sqlite", "postgres"):
        command = sub.add_parser(name)
        command.add_argument("--users", type=int, default=10_000_000)
        command.add_argument("--seed", type=int, default=1)
        command.add_argument("--pre", action="store_true", help="add latency_ms__pre (CUPED)")
    sub.choices["sqlite"].add_argument("--db", default="/tmp/ab_bench.db")
    sub.choices["sqlite"].add_argument("--reload", action="store_true")
    sub.choices["postgres"].add_argument("--pgdata", default="/tmp/ab_bench_pg")
    sub.choices["postgres"].add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = run_sqlite(args) if args.backend == "sqlite" else run_postgres(args)
    print(json.dumps({"users": args.users, "covariate": args.pre, **result}, indent=2))


if __name__ == "__main__":
    main()
