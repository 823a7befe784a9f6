"""Every experiment's sums, read as the small frames of :class:`AbStatistics` (inside the
refresh's savepoint, the stored sums include the open days)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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


def _share_window(q: float) -> str:
    """SQL: the bin's rows overlap the shares within the spread around the ``q``-quantile."""
    half = f"({SHARE_SPREAD!r} * SQRT({q * (1.0 - q)!r} / total_rows) + 1.0 / total_rows)"
    return (
        f"cum_rows >= ({q!r} - {half}) * total_rows "
        f"AND cum_rows - n_rows <= ({q!r} + {half}) * total_rows"
    )


def _histogram_read(settings: AbSettings) -> str:
    """The bins near each configured quantile, with within-group cumulative sums (window SQL in
    the key's order, no sort): a few dozen rows per group however wide the histogram."""
    keys = "experiment_id, variant, metric"
    windows = [
        f"(metric = {literal(spec.rows)} AND {_share_window(float(spec.quantile or 0.5))})"
        for spec in settings.metrics.values()
        if spec.kind == "quantile"
    ]
    return f"""
WITH cumulative AS (
  SELECT {keys}, bin, n_rows,
         SUM(n_rows) OVER upto AS cum_rows, SUM(sq_rows) OVER upto AS cum_sq,
         SUM(cross_rows) OVER upto AS cum_cross
  FROM ab_metric_histogram
  WINDOW upto AS (PARTITION BY {keys} ORDER BY bin ROWS UNBOUNDED PRECEDING)
),
totals AS (
  SELECT experiment_id AS total_experiment, variant AS total_variant, metric AS total_metric,
         SUM(n_rows) AS total_rows
  FROM ab_metric_histogram
  GROUP BY {keys}
)
SELECT {keys}, bin, {", ".join(HISTOGRAM_COLUMNS)}
FROM cumulative
JOIN totals ON total_experiment = experiment_id AND total_variant = variant
 AND total_metric = metric
WHERE {" OR ".join(windows) or "1 = 0"}
ORDER BY {keys}, bin"""


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
    histograms = pd.read_sql(text(_histogram_read(settings)), connection)
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
    for frame, sums in (
        (totals, AB_METRIC_SUMS),
        (daily, AB_METRIC_SUMS),
        (histograms, HISTOGRAM_COLUMNS),
    ):
        frame[list(sums)] = frame[list(sums)].astype(float)
    if "bin" in histograms:
        histograms["bin"] = histograms["bin"].astype("int64")
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
