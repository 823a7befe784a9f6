"""Benchmark: adopting an application database whose A/B tables were bulk-loaded bare.

Usage (from the project root; not part of CI)::

    .venv/bin/python benchmarks/bench_adopt_database.py sqlite --users 2000000
    .venv/bin/python benchmarks/bench_adopt_database.py postgres --users 2000000

The application's tables are made with plain SQL, the way a bulk load makes them:
``ab_test_assignments`` without its primary key, ``ab_test_metrics`` without any index, and
filled with ``benchmarks/bench_ab_analysis.py``'s loaders (one experiment, 50/50, four metrics:
one row per user of two, one per job of the others). Then ``mixai-db status`` (which also looks
for duplicate keys) and the migrations run on it, and ``status`` again. Reported: the seconds of
each, of each change the migrations made, and the row counts before and after (they must be
equal).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, table, text

from bench_ab_analysis import load_postgres, load_sqlite, throwaway_postgres

APP_TABLES = (
    "CREATE TABLE ab_test_assignments (experiment_id TEXT NOT NULL, user_id TEXT NOT NULL, "
    "variant TEXT NOT NULL, assigned_at TIMESTAMP NOT NULL)",
    "CREATE TABLE ab_test_metrics (experiment_id TEXT NOT NULL, user_id TEXT NOT NULL, "
    "metric TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, recorded_at TIMESTAMP NOT NULL)",
)


class _Timer(logging.Handler):
    """Seconds between the migrations' log records: the time of each change."""

    def __init__(self) -> None:
        super().__init__()
        self.last = time.perf_counter()
        self.steps: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        now = time.perf_counter()
        self.steps.append((record.getMessage(), round(now - self.last, 2)))
        self.last = now


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(table(name))).scalar_one()
            for name in ("ab_test_assignments", "ab_test_metrics")
        }


def adopt(engine: Engine, users: int, seed: int) -> dict[str, Any]:
    from mixai_ml.db.migrations import apply_migrations, database_status

    with engine.begin() as connection:
        for statement in APP_TABLES:
            connection.execute(text(statement))
    t0 = time.perf_counter()
    if engine.dialect.name == "sqlite":
        load_sqlite(engine, users, seed, pre=False)  # it keeps the tables' (absent) indexes
    else:
        load_postgres(engine, users, seed, pre=False)
    load_s = time.perf_counter() - t0
    before = _counts(engine)

    t0 = time.perf_counter()
    pending = database_status(engine)
    status_s = time.perf_counter() - t0
    timer = _Timer()
    logger = logging.getLogger("mixai_ml.db")
    logger.addHandler(timer)
    logger.setLevel(logging.INFO)
    t0 = timer.last = time.perf_counter()
    applied = apply_migrations(engine)
    upgrade_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    after = database_status(engine)
    return {
        "users": users,
        "load_s": round(load_s, 1),
        "rows_before": before,
        "status_before_s": round(status_s, 2),
        "drift_before": len(pending.drift),
        "upgrade_s": round(upgrade_s, 2),
        "applied": applied,
        "slowest_changes": sorted(timer.steps, key=lambda step: -step[1])[:4],
        "status_after_s": round(time.perf_counter() - t0, 2),
        "up_to_date_after": after.up_to_date,
        "rows_after": _counts(engine),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=("sqlite", "postgres"))
    parser.add_argument("--users", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="adopt-bench-") as folder:
            engine = create_engine(f"sqlite:///{Path(folder) / 'app.db'}")
            result = {"backend": "sqlite", **adopt(engine, args.users, args.seed)}
            engine.dispose()
    else:  # a folder of its own: the cluster's owner is the postgres user
        root = Path(tempfile.gettempdir()) / f"adopt-bench-pg-{os.getpid()}"
        with throwaway_postgres(root) as url:
            engine = create_engine(url)
            result = {"backend": "postgresql", **adopt(engine, args.users, args.seed)}
            engine.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
