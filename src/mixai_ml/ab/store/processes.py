"""A SQLite rebuild's sums in worker processes, a share of the experiments each.

The sums of different experiments are independent, so each worker sums its own experiments
(:mod:`mixai_ml.db.sqlite_shares`) and the rebuild copies their rows in. At platform scale
(1,000 experiments, 2 million users) two processes on two cores cut a first run from 201 s to
133 s on a slow VM (``docs/benchmarks.md``). PostgreSQL plans its own parallel workers.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, text

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store.sql import EARLIEST, Delta, missing_caps, shaped, statement
from mixai_ml.db.sqlite_shares import Share, database_file, run_shares

logger = logging.getLogger(__name__)

FOUND_CAPS = "found_caps"
"""A worker's table of the pre-period caps it fixed."""
CAP_COLUMNS = ("experiment_id", "metric", "cap", "pre_users")
_CAPS = "experiment_id, metric, cap"
_CAP = "experiment_id VARCHAR(64) NOT NULL, metric VARCHAR(64) NOT NULL, cap FLOAT NOT NULL"
_KEPT_CAPS_COLUMNS = f"{_CAP}, PRIMARY KEY (experiment_id, metric)"
_FOUND_CAPS_COLUMNS = f"{_CAP}, pre_users INTEGER NOT NULL"


def split_experiments(sizes: Mapping[str, int], shares: int) -> list[list[str]]:
    """Experiments in ``shares`` groups of about equal total size (largest first, each to the
    lightest group); each group sorted, empty groups dropped."""
    groups: list[tuple[int, int, list[str]]] = [(0, index, []) for index in range(shares)]
    for experiment in sorted(sizes, key=lambda e: (-sizes[e], e)):
        total, index, members = heapq.heappop(groups)
        members.append(experiment)
        heapq.heappush(groups, (total + sizes[experiment], index, members))
    return [sorted(members) for _, _, members in sorted(groups, key=lambda g: g[1]) if members]


def _planned_shares(connection: Connection, settings: AbSettings) -> list[list[str]]:
    """The experiments of each worker, or ``[]`` to sum in this process."""
    processes = settings.statistics.processes
    if processes < 2 or database_file(connection) is None:
        return []
    sizes = {
        str(experiment): int(users)
        for experiment, users in connection.execute(
            text("SELECT experiment_id, COUNT(*) FROM ab_test_assignments GROUP BY experiment_id")
        )
    }
    if len(sizes) < 2 or sum(sizes.values()) < settings.statistics.processes_from_users:
        return []
    return split_experiments(sizes, processes)


@contextmanager
def sums_in_processes(
    connection: Connection,
    delta: Delta,
    settings: AbSettings,
    hi: datetime,
    experiment_ids: Sequence[str] | None,
) -> Iterator[list[Path]]:
    """Every experiment's missing pre-period caps and sums of rows before ``hi``, in workers.

    Yields the workers' scratch databases (removed afterwards): each holds the tables of sums
    of its experiments and, in :data:`FOUND_CAPS`, the caps it fixed (the caller stores them).
    Yields ``[]`` for a partial rebuild (``experiment_ids``) or where processes would not pay
    (see :class:`StatisticsSettings`): the caller then works in its own process. The caller
    holds the write lock and has not written yet (:mod:`mixai_ml.db.sqlite_shares`); the
    caps its transaction keeps are passed to the workers, which cannot see its uncommitted
    rows.
    """
    shares = [] if experiment_ids is not None else _planned_shares(connection, settings)
    if not shares:
        yield []
        return
    logger.info(
        "summing the A/B statistics of %d experiments in %d processes",
        sum(map(len, shares)),
        len(shares),
    )
    kept = [*map(tuple, connection.execute(text(f"SELECT {_CAPS} FROM ab_metric_caps")))]
    fix_caps = f"INSERT INTO main.{FOUND_CAPS} ({', '.join(CAP_COLUMNS)}) "
    work = []
    for experiments in shares:
        params = delta.params(EARLIEST, hi, experiments)
        statements = [
            text(f"CREATE TABLE main.{FOUND_CAPS} ({_FOUND_CAPS_COLUMNS})"),
            *(
                missing_caps(metric, quantile, hi, experiments, into=fix_caps)
                for metric, quantile in settings.pre_period_quantiles.items()
            ),
            # the sums below read the caps just fixed with those kept
            text(f"INSERT INTO temp.ab_metric_caps SELECT {_CAPS} FROM main.{FOUND_CAPS}"),
            *(
                statement(f"CREATE TABLE main.{table} AS {shaped(table, sql)}", **params)
                for table, sql in delta.everything(experiments)
                if sql is not None
            ),
        ]
        work.append(Share(statements, temporary={"ab_metric_caps": (_KEPT_CAPS_COLUMNS, kept)}))
    with run_shares(connection, work) as scratch:
        yield scratch
