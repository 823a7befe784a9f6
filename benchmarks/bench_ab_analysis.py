"""Benchmark of the ``ab_analysis`` pipeline at platform scale, on SQLite and PostgreSQL.

Usage (from the project root; not part of CI: loading tens of millions of rows takes minutes)::

    .venv/bin/python benchmarks/bench_ab_analysis.py sqlite --scenario large --db /tmp/ab_large.db
    .venv/bin/python benchmarks/bench_ab_analysis.py postgres --scenario platform

Scenarios (28 days of data; per user one row of ``accepted`` (0/1) and ``param_mae``, and one row
of ``latency_ms`` and ``error`` per job, 1.3 jobs per user on average):

* ``platform``: 1,000 experiments × 2,000 users (2 million users, ~9 million rows); a third
  with small effects, ten with large ones, ten 50 % slower, four losing a fifth of their treated
  users (a sample-ratio mismatch);
* ``large``: one experiment with 10 million users (~46 million rows).

``--pre`` adds a ``param_mae__pre`` row per user (CUPED and the pre-period cap). The project's
own parameters are used (p95 latency histograms, errors per job, capped ``param_mae``, sequential
SRM, the report with at most 30 experiments in detail).

Measured, each in a fresh child process running the Kedro pipeline (the project's catalog, file
outputs in a temporary folder, the clock set by the benchmark):

1. ``first``: the first run on the 27 days of history (builds every stored sum from the raw rows);
2. ``again``: the same day once more (nothing to fold: the open day only);
3. ``daily``: the next day at 01:12, after that day's rows were appended (folds one day, adds
   the open day's rows: those recorded since midnight);
4. ``rebuild``: the same day with ``statistics.rebuild: true`` (every sum from every raw row), and
   a check that its results equal the daily run's.

``--floor`` measures instead the least that any design keeping per-user statistics must do, next
to the first run on the same rows: one statement that sums every user's rows of every metric,
looks up their variant and groups them by experiment, variant, metric and day (no covariate,
cap or histogram). Its time against the goal tells whether a faster machine, not more work on
the pipeline, is what a goal needs.

Reported per run: the pipeline's wall time and the part spent refreshing the sums, the CPU time
of the process (and, for PostgreSQL, of the database server) meanwhile, the machine's load
average when the run started (on a shared machine, CPU time is the better guide to what an idle
one would take), and the child's peak resident memory (``VmHWM``: it includes SQLite's in-process
work, not PostgreSQL's server). A SQLite rebuild's worker processes are reported apart: their CPU
time and the largest one's peak memory (``maxrss``, an upper bound).
``sqlite`` loads into a new database file; ``postgres`` starts a throwaway cluster (``initdb`` +
``pg_ctl``, as the ``postgres`` user when run as root, ``random_page_cost=1.1`` as for SSDs, other
settings default) and removes it (``--keep`` leaves it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, inspect, text

from process_cpu import cpu_seconds

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START = np.datetime64("2026-01-01T00:00:00", "s")
DAYS = 28
CUT = START + np.timedelta64(DAYS - 1, "D")
"""Rows before this are the history; the last day's rows arrive for the daily run."""
DAILY_AT = DAYS + 0.05
"""The daily run's clock (days from START): 01:12 the next day, after the nightly load."""
HORIZON = START + np.timedelta64(round(DAILY_AT * 86_400), "s")
"""No row is recorded after the last run's clock (a job simulated later has not happened yet)."""
BLOCK = 500_000
SCENARIOS = {"platform": (1000, 2000), "large": (1, 10_000_000)}
"""Experiments × users per experiment."""


def _moment(day: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)


RUNS = {
    "first": (_moment(DAYS - 1), False),
    "again": (_moment(DAYS - 1 + 0.25), False),
    "daily": (_moment(DAILY_AT), False),
    "rebuild": (_moment(DAILY_AT), True),
}
"""Run name → (the clock, rebuild)."""


def _blocks(
    users: int, seed: int, pre: bool, experiments: int, new: bool
) -> Iterator[dict[str, np.ndarray]]:
    """Assignment and metric rows by blocks of users: the history, or (``new``) the last day."""
    total = users
    per_experiment = max(1, users // experiments)
    rng = np.random.default_rng(seed)
    for first in range(0, total, BLOCK):
        n = min(BLOCK, total - first)
        index = np.arange(first, first + n)
        experiment = np.char.add("exp_", np.char.zfill((index // per_experiment).astype(str), 4))
        users = np.char.add("u", np.char.zfill(index.astype(str), 9))
        treated = rng.random(n) < 0.5
        assigned = START + rng.integers(0, DAYS * 86_400, n).astype("timedelta64[s]")
        jobs = 1 + rng.poisson(0.3, n)
        number = index // per_experiment
        # a third have small effects, 1 % a large one, 1 % a slower p95 (a guardrail stops
        # them); 0.4 % lose 20 % of their treated users (a sample-ratio mismatch)
        lift = 1.0 + treated * np.where(number % 100 == 0, 0.3, 0.02 * (number % 3 == 0))
        slower = 1.0 + 0.5 * treated * (number % 100 == 50)
        lost = treated & (number % 250 == 7) & (rng.random(n) < 0.2)
        user_latency = rng.lognormal(5.0, 0.3, n) * slower
        owner = np.repeat(np.arange(n), jobs)
        job_at = assigned[owner] + rng.integers(60, 86_400, owner.size).astype("timedelta64[s]")
        parts = {
            "accepted": (np.arange(n), (rng.random(n) < 0.3 * lift).astype(float), assigned),
            "param_mae": (np.arange(n), rng.gamma(2.0, 0.05, n) / lift, assigned),
            "latency_ms": (
                owner,
                user_latency[owner] * rng.lognormal(0.0, 0.3, owner.size),
                job_at,
            ),
            "error": (owner, (rng.random(owner.size) < 0.02).astype(float), job_at),
        }
        if pre:
            parts["param_mae__pre"] = (
                np.arange(n),
                rng.gamma(2.0, 0.05, n),
                assigned - np.timedelta64(7, "D"),
            )
        assigned_now = ((assigned >= CUT) == new) & ~lost
        rows: dict[str, list[np.ndarray]] = {"owner": [], "metric": [], "value": [], "at": []}
        for metric, (who, value, at) in parts.items():
            # a pre-period row arrives with its user's assignment, the others when recorded
            keep = assigned_now[who] if metric.endswith("__pre") else ((at >= CUT) == new)
            keep &= ~lost[who] & (at < HORIZON)
            rows["owner"].append(who[keep])
            rows["metric"].append(np.full(int(keep.sum()), metric))
            rows["value"].append(value[keep])
            rows["at"].append(at[keep])
        at = np.concatenate(rows["at"])
        order = np.argsort(at, kind="stable")  # as an application appends them
        owner_all = np.concatenate(rows["owner"])[order]
        yield {
            "experiment": experiment[assigned_now],
            "user_id": users[assigned_now],
            "variant": np.where(treated, "treatment", "control")[assigned_now],
            "assigned_at": assigned[assigned_now],
            "m_experiment": experiment[owner_all],
            "m_user_id": users[owner_all],
            "m_metric": np.concatenate(rows["metric"])[order],
            "m_value": np.concatenate(rows["value"])[order],
            "m_recorded_at": at[order],
        }


def _stamps(stamp: np.ndarray, suffix: str) -> list[str]:
    """``YYYY-MM-DD HH:MM:SS`` + ``suffix`` (SQLAlchemy's SQLite format, or a UTC offset)."""
    text = np.char.replace(np.datetime_as_string(stamp, unit="s"), "T", " ")
    return np.char.add(text, suffix).tolist()


def _raw_indexes() -> list[Any]:
    from mixai_ml.db import schema

    return [*schema.ab_test_metrics.indexes, *schema.ab_test_assignments.indexes]


def load_sqlite(
    engine: Engine, users: int, seed: int, pre: bool, *, experiments: int = 1, new: bool = False
) -> None:
    """Insert with ``executemany``; the history (not ``new``) replaces the tables' rows, with
    their secondary indexes dropped while loading and rebuilt after."""
    from mixai_ml.db import schema

    rebuilt = []
    if not new:
        with engine.begin() as connection:
            present = {
                index["name"]
                for name in ("ab_test_metrics", "ab_test_assignments")
                for index in inspect(connection).get_indexes(name)
            }
            rebuilt = [index for index in _raw_indexes() if index.name in present]
            for index in rebuilt:
                index.drop(connection)
            connection.execute(schema.ab_test_metrics.delete())
            connection.execute(schema.ab_test_assignments.delete())
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()  # sqlite3's executemany takes any iterable
        cursor.execute("PRAGMA synchronous=OFF")
        for block in _blocks(users, seed, pre, experiments, new):
            cursor.executemany(
                "INSERT INTO ab_test_assignments VALUES (?, ?, ?, ?)",
                zip(
                    block["experiment"].tolist(),
                    block["user_id"].tolist(),
                    block["variant"].tolist(),
                    _stamps(block["assigned_at"], ".000000"),
                    strict=True,
                ),
            )
            cursor.executemany(
                "INSERT INTO ab_test_metrics VALUES (?, ?, ?, ?, ?)",
                zip(
                    block["m_experiment"].tolist(),
                    block["m_user_id"].tolist(),
                    block["m_metric"].tolist(),
                    block["m_value"].tolist(),
                    _stamps(block["m_recorded_at"], ".000000"),
                    strict=True,
                ),
            )
            raw.commit()
            print(f"  +{len(block['m_user_id']):,} rows", flush=True)
    finally:
        raw.close()
    with engine.begin() as connection:
        for index in rebuilt:
            index.create(connection)


def _copy(cursor: Any, table: str, columns: list[list[str]]) -> None:
    buffer = io.StringIO()
    buffer.writelines("\t".join(row) + "\n" for row in zip(*columns, strict=True))
    with cursor.copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def load_postgres(
    engine: Engine, users: int, seed: int, pre: bool, *, experiments: int = 1, new: bool = False
) -> None:
    """``COPY ... FROM STDIN``, then ``VACUUM ANALYZE``."""
    from mixai_ml.db import schema

    if not new:
        with engine.begin() as connection:
            connection.execute(schema.ab_test_metrics.delete())
            connection.execute(schema.ab_test_assignments.delete())
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for block in _blocks(users, seed, pre, experiments, new):
            _copy(
                cursor,
                "ab_test_assignments",
                [
                    block["experiment"].tolist(),
                    block["user_id"].tolist(),
                    block["variant"].tolist(),
                    _stamps(block["assigned_at"], "+00"),
                ],
            )
            _copy(
                cursor,
                "ab_test_metrics",
                [
                    block["m_experiment"].tolist(),
                    block["m_user_id"].tolist(),
                    block["m_metric"].tolist(),
                    [repr(v) for v in block["m_value"].tolist()],
                    _stamps(block["m_recorded_at"], "+00"),
                ],
            )
            raw.commit()
            print(f"  +{len(block['m_user_id']):,} rows", flush=True)
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("ab_test_assignments", "ab_test_metrics"):  # as autovacuum would
            connection.execute(text(f"VACUUM ANALYZE {table}"))


def child(url: str, run: str) -> None:
    """Run the pipeline once (in this fresh process) with the run's clock; print JSON timings."""
    import yaml
    from kedro.io import DataCatalog
    from kedro.runner import SequentialRunner

    from mixai_ml.ab import store
    from mixai_ml.pipelines.ab_analysis import nodes
    from mixai_ml.pipelines.ab_analysis.pipeline import create_pipeline

    now, rebuild = RUNS[run]
    refresh_seconds: list[float] = []

    refresh_cpu: list[float] = []

    def timed_refresh(engine: Engine, settings: Any) -> Any:
        t0, c0 = time.perf_counter(), _cpu_self()
        statistics = store.refresh_statistics(engine, settings, now=now)
        refresh_seconds.append(time.perf_counter() - t0)
        refresh_cpu.append(_cpu_self() - c0)
        return statistics

    nodes.refresh_statistics = timed_refresh  # type: ignore[attr-defined]  # the clock
    started = time.perf_counter()
    pipeline = create_pipeline()
    config: dict[str, Any] = {}
    for name in ("catalog.yml", "catalog_ab_analysis.yml"):
        config.update(yaml.safe_load((PROJECT_ROOT / "conf" / "base" / name).read_text()))
    config = {k: dict(v) for k, v in config.items() if k in pipeline.datasets()}
    out = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    for entry in config.values():
        for key in ("filepath", "path"):
            if key in entry:
                entry[key] = str(out / Path(entry[key]).name)
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ab_analysis.yml").read_text())
    params = params["ab_analysis"]
    params["statistics"] = {**params["statistics"], "rebuild": rebuild}
    catalog = DataCatalog.from_config(config, {"mixai_db": {"con": url}})
    catalog["params:ab_analysis"] = params
    t0, c0 = time.perf_counter(), _cpu_self()
    SequentialRunner().run(pipeline, catalog)
    pipeline_s, pipeline_cpu = time.perf_counter() - t0, _cpu_self() - c0
    results = (out / "ab_test_results.csv").read_text()
    keep = Path(tempfile.gettempdir()) / f"ab-bench-{run}.csv"
    keep.write_text(results)
    plots = len(list((out / "ab_experiments").glob("*.png")))
    shutil.rmtree(out, ignore_errors=True)
    # VmHWM: this process's peak RSS (getrusage's maxrss would include the parent's before exec)
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    # SQLite rebuilds' worker processes (reaped); their maxrss may count the image before exec
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "refresh_s": round(sum(refresh_seconds), 2),
                "refresh_cpu_s": round(sum(refresh_cpu), 2),
                "pipeline_s": round(pipeline_s, 2),
                "pipeline_cpu_s": round(pipeline_cpu, 2),
                "process_cpu_s": round(_cpu_self(), 2),
                "child_total_s": round(time.perf_counter() - started, 2),
                "result_rows": results.count("\n") - 1,
                "experiment_plots": plots,
                "peak_rss_mb": round(peak_kb / 1024),
                "workers_cpu_s": round(workers.ru_utime + workers.ru_stime, 2),
                "workers_peak_rss_mb": round(workers.ru_maxrss / 1024),
                "results_csv": str(keep),
            }
        )
    )


FLOOR_SQL = """
SELECT COUNT(*) FROM (
  SELECT p.experiment_id, a.variant, p.metric, {day} AS day,
         COUNT(*) AS n, SUM(p.s / p.c) AS sum_y, SUM(p.s * p.s / (p.c * p.c)) AS sum_y2
  FROM (
    SELECT experiment_id, metric, user_id, COUNT(*) AS c, SUM(value) AS s, MIN(recorded_at) AS f
    FROM ab_test_metrics
    GROUP BY experiment_id, metric, user_id
  ) p
  LEFT JOIN ab_test_assignments a ON a.experiment_id = p.experiment_id AND a.user_id = p.user_id
  GROUP BY p.experiment_id, a.variant, p.metric, {day}
) sums"""
"""Each user's sum of each metric, their variant, grouped by day: what no first run can skip.

``LEFT JOIN``: with an inner join PostgreSQL misestimated the join and sorted the per-user rows
(65 s against 31 s at 2.5 million users). SQLite was faster with it (340 s against 383 s at 10
million: it wrote the per-user sums to a scratch table first), so there the floor is a little
lower than this measures (docs/benchmarks.md)."""
FLOOR_DAY = {"sqlite": "SUBSTR(p.f, 1, 10)", "postgresql": "DATE_TRUNC('day', p.f)"}
"""The cheapest day key of each database (the floor's, not necessarily the pipeline's)."""


def floor(url: str, server: Callable[[], float] | None = None) -> dict[str, Any]:
    """Time :data:`FLOOR_SQL` over the history (the rows before the first run), with the
    refresh's connection settings (CPU: this process's, SQLite's work; and the server's)."""
    from mixai_ml.ab.store.sql import prepare_connection
    from mixai_ml.db import get_engine

    def timed() -> dict[str, Any]:
        engine = get_engine(url)
        with engine.begin() as connection:
            prepare_connection(connection)
            t0, c0 = time.perf_counter(), _cpu_self()
            day = FLOOR_DAY[connection.dialect.name]
            groups = connection.execute(text(FLOOR_SQL.format(day=day))).scalar_one()
            timings = {
                "floor_s": round(time.perf_counter() - t0, 2),
                "floor_cpu_s": round(_cpu_self() - c0, 2),
                "groups": groups,
            }
        engine.dispose()
        return timings

    return _observed("floor", timed, server)


def _observed(
    name: str, work: Callable[[], dict[str, Any]], server: Callable[[], float] | None
) -> dict[str, Any]:
    """``work()``'s timings, with the machine's load average when it started and the database
    server's CPU time meanwhile; printed as they come."""
    load = float(Path("/proc/loadavg").read_text().split()[0])
    before = server() if server else 0.0
    timings = work() | {"load_average": load}
    if server:
        timings["server_cpu_s"] = round(server() - before, 2)
    print(f"  {name}: {timings}", flush=True)
    return timings


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu(data: Path) -> float:
    """CPU seconds used so far by a PostgreSQL cluster: its postmaster, the backends it reaped,
    and the live ones."""
    return cpu_seconds(int((data / "postmaster.pid").read_text().split()[0]), reaped=True)


def measure(url: str, run: str, server: Callable[[], float] | None = None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter: its wall time (imports included), the machine's
    load average when it started, and the database server's CPU time meanwhile."""

    def timed() -> dict[str, Any]:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "_child", url, run],
            check=True,
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"},
        )
        wall = time.perf_counter() - t0
        timings: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return timings | {"process_wall_s": round(wall, 2)}

    return _observed(run, timed, server)


def same_results(first: str, second: str) -> bool:
    """Whether two results CSVs agree on every statistic (to 1e-6 relative)."""
    import pandas as pd

    keys = ["experiment_id", "metric", "variant"]
    a, b = (pd.read_csv(path).sort_values(keys).reset_index(drop=True) for path in (first, second))
    numbers = [c for c in a.columns if a[c].dtype.kind == "f"]
    return bool(
        len(a) == len(b)
        and (a[keys] == b[keys]).all().all()
        and np.allclose(a[numbers], b[numbers], rtol=1e-6, atol=1e-9, equal_nan=True)
        and (a["decision"] == b["decision"]).all()
    )


def _size(args: argparse.Namespace) -> dict[str, Any]:
    """The loaders' arguments for the scenario."""
    experiments, per_experiment = SCENARIOS[args.scenario]
    users = experiments * max(2, round(per_experiment * args.scale))
    return {"users": users, "seed": args.seed, "pre": args.pre, "experiments": experiments}


def run_all(
    url: str,
    engine: Engine,
    load: Any,
    args: argparse.Namespace,
    server: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """The four runs of the module docstring around the daily load (``--floor``: the floor and
    the first run)."""
    if args.floor:
        lowest = floor(url, server)
        return {"floor": lowest, "runs": {"first": measure(url, "first", server)}}
    runs = {name: measure(url, name, server) for name in ("first", "again")}
    t0 = time.perf_counter()
    load(engine, **_size(args), new=True)
    daily_load_s = round(time.perf_counter() - t0)
    engine.dispose()
    runs |= {name: measure(url, name, server) for name in ("daily", "rebuild")}
    equal = same_results(runs["daily"]["results_csv"], runs["rebuild"]["results_csv"])
    return {"runs": runs, "daily_load_s": daily_load_s, "daily_equals_rebuild": equal}


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
def throwaway_postgres(root: Path, keep: bool = False, durable: bool = False) -> Iterator[str]:
    """A PostgreSQL cluster in ``root`` (as ``postgres`` when root), tuned as for SSDs; its URL.

    Removed afterwards unless ``keep``. ``durable``: commits are fsynced, as in production
    (the A/B benchmark turns that off: it measures queries, not commits).
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
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync={'on' if durable else 'off'} "
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

        engine = get_engine(url)
        t0 = time.perf_counter()
        load_postgres(engine, **_size(args))
        load_s = time.perf_counter() - t0
        engine.dispose()
        return {
            "backend": "postgresql 15",
            "load_s": round(load_s),
            "url": url,
            **run_all(
                url,
                engine,
                load_postgres,
                args,
                server=lambda: server_cpu(Path(args.pgdata) / "data"),
            ),
        }


def run_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    from mixai_ml.db import get_engine

    path = Path(args.db).resolve()
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    t0 = time.perf_counter()
    load_sqlite(engine, **_size(args))
    load_s = round(time.perf_counter() - t0)
    engine.dispose()
    return {"backend": "sqlite", "load_s": load_s, **run_all(url, engine, load_sqlite, args)}


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="backend", required=True)
    for name in ("sqlite", "postgres"):
        command = sub.add_parser(name)
        command.add_argument("--scenario", choices=sorted(SCENARIOS), default="large")
        command.add_argument("--seed", type=int, default=1)
        command.add_argument("--pre", action="store_true", help="add param_mae__pre (CUPED, cap)")
        command.add_argument(
            "--scale", type=float, default=1.0, help="users per experiment × this (quick trials)"
        )
        command.add_argument(
            "--floor", action="store_true", help="the per-user floor and the first run only"
        )
    sub.choices["sqlite"].add_argument("--db", default="/tmp/ab_bench.db")
    sub.choices["postgres"].add_argument("--pgdata", default="/tmp/ab_bench_pg")
    sub.choices["postgres"].add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = run_sqlite(args) if args.backend == "sqlite" else run_postgres(args)
    print(
        json.dumps(
            {"scenario": args.scenario, "scale": args.scale, "covariate": args.pre, **result},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
