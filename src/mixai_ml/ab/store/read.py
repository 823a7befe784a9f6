"""Every experiment's sums, read as the small frames of :class:`AbStatistics` (inside the
refresh's savepoint, the stored sums include the open days)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, inspect, text

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store.sql import literal, statement
from mixai_ml.db.ab_store_tables import AB_METRIC_SUMS


@dataclass(frozen=True)
class AbStatistics:
    """What the analysis reads: stored sums plus the open days, as small frames.

    Attributes:
        assignments: ``experiment_id, variant, day, n_assigned``.
        metric_totals: ``experiment_id, variant, metric`` and the sums of ``ab_metric_daily``
            over all days.
        metric_daily: The same per ``day``, for the sources of primary metrics only (paths).
        histograms: ``experiment_id, variant, metric, bin`` and :data:`HISTOGRAM_COLUMNS`, the
            bins near each configured quantile, sorted by the keys.
        caps: ``experiment_id, metric, cap, pre_users`` (pre-period caps).
        designs: ``experiment_id, weights`` (JSON) from ``ab_experiments``, when it exists.
        folded_before: Rows recorded before this are stored; later ones were added for the read
            only (the open days).
    """

    assignments: pd.DataFrame
    metric_totals: pd.DataFrame
    metric_daily: pd.DataFrame
    histograms: pd.DataFrame
    caps: pd.DataFrame
    designs: pd.DataFrame
    folded_before: datetime


# --- reading -----------------------------------------------------------------------------------


_ORIGINAL_ALLOCATION = (
    "(SELECT experiment_id, variant, day, n_assigned "
    "FROM ab_assignment_daily "
    "UNION ALL SELECT experiment_id, variant, assigned_day, n_purged "
    "FROM ab_purged_assignments) assigned"
)
"""The assignments of every experiment as made: those stored, and those the purge deleted
(counted without user ids), so that withdrawals never move the sample-ratio check."""


def _sums(names: Iterable[str]) -> str:
    return ", ".join(f"SUM({name}) AS {name}" for name in names)


HISTOGRAM_COLUMNS = ("n_rows", "cum_rows", "cum_sq", "cum_cross", "total_rows")
"""What is read of each histogram bin (:class:`mixai_ml.ab.quantile.Histograms`)."""
SHARE_SPREAD = 12.0
"""The bins kept around a quantile cover ``SHARE_SPREAD·√(q(1−q)/N)`` of share on each side:
its interval for design effects up to 37."""


def _near_quantiles(connection: Connection, settings: AbSettings) -> pd.DataFrame:
    """The bins near each configured quantile, with their sums cumulated within the group.

    Two plain reads in the primary key's order, the groups and then their bins' numbers (in
    chunks, through the driver's cursor), cumulated by numpy: at platform scale (410,000 bins)
    1.3 s, where SQLite's window functions picking the bins in SQL took 3.4 s before the rows
    reached Python (``docs/benchmarks.md``). The sums are whole numbers, so running sums over all
    groups are exact.
    """
    quantiles: dict[str, list[float]] = {}
    for spec in settings.metrics.values():
        if spec.kind == "quantile":
            quantiles.setdefault(spec.rows, []).append(float(spec.quantile or 0.5))
    keys = "experiment_id, variant, metric"
    where = f"WHERE metric IN ({', '.join(literal(m) for m in sorted(quantiles)) or 'NULL'})"
    groups = pd.read_sql(
        text(
            f"SELECT {keys}, COUNT(*) AS bins FROM ab_metric_histogram {where} "
            f"GROUP BY {keys} ORDER BY {keys}"
        ),
        connection,
    )
    with closing(connection.connection.cursor()) as cursor:  # plain tuples, a chunk at a time
        cursor.execute(
            f"SELECT bin, n_rows, sq_rows, cross_rows FROM ab_metric_histogram {where} "
            f"ORDER BY {keys}, bin"
        )
        batches = iter(lambda: cursor.fetchmany(50_000), [])
        chunks = [np.array(rows, dtype=float) for rows in batches]
    numbers = np.concatenate(chunks) if chunks else np.empty((0, 4))
    sizes = groups["bins"].to_numpy(dtype=np.int64)
    if sizes.sum() != len(numbers):  # the refresh's lock keeps other writers out
        raise RuntimeError("ab_metric_histogram changed while it was read; run the analysis again")
    group = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.cumsum(sizes) - sizes
    running = np.cumsum(numbers[:, 1:], axis=0)  # n_rows, sq_rows, cross_rows
    before = np.vstack([np.zeros((1, 3)), running])[starts]  # running sums before each group
    cumulative = running - before[group]
    total = cumulative[starts + sizes - 1, 0][group]
    near = np.zeros(len(numbers), dtype=bool)
    for metric, levels in quantiles.items():
        mine = (groups["metric"] == metric).to_numpy()[group]
        for q in levels:
            half = SHARE_SPREAD * np.sqrt(q * (1.0 - q) / total) + 1.0 / total
            near |= (
                mine
                & (cumulative[:, 0] >= (q - half) * total)
                & (cumulative[:, 0] - numbers[:, 1] <= (q + half) * total)
            )
    picked = groups.iloc[group[near], :3].reset_index(drop=True)
    return picked.assign(
        bin=numbers[near, 0].astype(np.int64),
        n_rows=numbers[near, 1],
        cum_rows=cumulative[near, 0],
        cum_sq=cumulative[near, 1],
        cum_cross=cumulative[near, 2],
        total_rows=total[near],
    )


def read_statistics(
    connection: Connection, settings: AbSettings, folded_before: datetime
) -> AbStatistics:
    metric_keys = "experiment_id, variant, metric"
    primary_sources = sorted({s.rows for s in settings.metrics.values() if s.role == "primary"})
    totals = pd.read_sql(
        text(
            f"SELECT {metric_keys}, {_sums(AB_METRIC_SUMS)} FROM ab_metric_daily "
            f"GROUP BY {metric_keys} ORDER BY {metric_keys}"
        ),
        connection,
    )
    daily = pd.read_sql(
        statement(
            f"SELECT {metric_keys}, day, {', '.join(AB_METRIC_SUMS)} FROM ab_metric_daily "
            f"WHERE metric IN :ids ORDER BY {metric_keys}, day",
            ids=primary_sources or [""],
        ),
        connection,
    )
    histograms = _near_quantiles(connection, settings)
    assignments = pd.read_sql(
        text(
            "SELECT experiment_id, variant, day, SUM(n_assigned) AS n_assigned "
            f"FROM {_ORIGINAL_ALLOCATION} "
            "GROUP BY experiment_id, variant, day "
            "HAVING SUM(n_assigned) <> 0 ORDER BY experiment_id, variant, day"
        ),
        connection,
    )
    caps = pd.read_sql(
        text("SELECT experiment_id, metric, cap, pre_users FROM ab_metric_caps"), connection
    )
    designs = (
        pd.read_sql(text("SELECT experiment_id, weights FROM ab_experiments"), connection)
        if inspect(connection).has_table("ab_experiments")
        else pd.DataFrame(columns=["experiment_id", "weights"])
    )
    for frame in (totals, daily):
        frame[list(AB_METRIC_SUMS)] = frame[list(AB_METRIC_SUMS)].astype(float)
    assignments["n_assigned"] = assignments["n_assigned"].astype("int64")
    return AbStatistics(
        assignments=assignments,
        metric_totals=totals,
        metric_daily=daily,
        histograms=histograms,
        caps=caps,
        designs=designs,
        folded_before=folded_before,
    )
