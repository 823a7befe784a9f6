"""The tables of ``ab_analysis``'s stored sufficient statistics (:mod:`mixai_ml.ab.store`).

Part of :mod:`mixai_ml.db.schema` (which re-exports them), kept apart for its size.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, PrimaryKeyConstraint, String, Table, Text

from mixai_ml.db.base import metadata, utc

# --- ab_analysis: sufficient statistics kept up to date from new rows (mixai_ml.ab.store) -----
# Sums over users only (no user ids): nothing here is personal data.

AB_METRIC_SUMS: tuple[str, ...] = (
    "n",
    "n_nonbinary",
    "n_capped",
    "sum_y",
    "sum_y2",
    "sum_c",
    "sum_c2",
    "sum_s",
    "sum_s2",
    "sum_cs",
    "n_x",
    "sum_x",
    "sum_x2",
    "sum_xy",
    "sum_y_x",
    "sum_xs",
    "sum_xc",
    "sum_s_x",
    "sum_c_x",
)
"""Per-user sums of ``ab_metric_daily`` (meanings in :mod:`mixai_ml.ab.store`)."""
AB_HISTOGRAM_SUMS: tuple[str, ...] = ("n_rows", "sq_rows", "cross_rows")
"""Per-bin sums of ``ab_metric_histogram`` (meanings in :mod:`mixai_ml.ab.quantile`)."""

ab_statistics_state = Table(
    "ab_statistics_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("folded_before", utc(), nullable=False),
    Column("definition", Text, nullable=False),
    Column("refreshed_at", utc(), nullable=False),
    Column("rebuilt_at", utc(), nullable=False),
)

ab_folded_days = Table(
    "ab_folded_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("metric_rows", BigInteger, nullable=False),
    Column("assignment_rows", BigInteger, nullable=False),
)

ab_assignment_daily = Table(
    "ab_assignment_daily",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("n_assigned", BigInteger, nullable=False),
    PrimaryKeyConstraint("experiment_id", "variant", "day", name="pk_ab_assignment_daily"),
)

ab_metric_daily = Table(
    "ab_metric_daily",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    *(Column(name, Float, nullable=False) for name in AB_METRIC_SUMS),
    PrimaryKeyConstraint("experiment_id", "variant", "metric", "day", name="pk_ab_metric_daily"),
)

ab_metric_histogram = Table(
    "ab_metric_histogram",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("bin", BigInteger, nullable=False),
    *(Column(name, Float, nullable=False) for name in AB_HISTOGRAM_SUMS),
    PrimaryKeyConstraint(
        "experiment_id", "variant", "metric", "bin", name="pk_ab_metric_histogram"
    ),
)

ab_metric_caps = Table(
    "ab_metric_caps",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("cap", Float, nullable=False),
    Column("pre_users", BigInteger, nullable=False),
    Column("fixed_at", utc(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "metric", name="pk_ab_metric_caps"),
)
