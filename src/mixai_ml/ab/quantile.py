"""Quantile metrics (p50, p95, p99 of the rows, e.g. of every job's latency) from histograms.

The database bins every row of a quantile metric on a fixed log-spaced grid (relative bin width
``w``, 1 % by default) and keeps per experiment × variant × metric × bin three sums over users
(:mod:`mixai_ml.ab.store`): with ``c_ub`` the rows of user ``u`` in bin ``b``, ``I_u(b)`` their
rows up to and including bin ``b`` and ``N_u`` all their rows,

* ``rows_b  = Σ_u c_ub``                        (the histogram),
* ``sq_b    = Σ_u c_ub·(I_u(b) + I_u(b−1))``    (so that ``Σ_{b≤k} sq_b = Σ_u I_u(k)²``),
* ``cross_b = Σ_u c_ub·N_u``                    (so that ``Σ_{b≤k} cross_b = Σ_u I_u(k)·N_u``).

All three add over users, so they are kept incrementally like every other sum, and no row
leaves the database.

**Estimate.** The ``q``-quantile is read off the cumulative histogram, interpolated
log-linearly inside its bin (exact to a small fraction of ``w`` for smooth distributions).

**Uncertainty.** Rows of one user are correlated, so the binomial variance ``q(1−q)/N`` of the
share of rows below the quantile is too small. That share is a ratio metric
``F̂ = Σ_u I_u / Σ_u N_u``; its delta-method variance (Deng, Knoblich & Lu 2018, §4.3) is

    Var(F̂) = Var_u(I_u − F̂·N_u) / (n·N̄²),

computed from the three sums at the bin edge above the estimate. Their ratio to the binomial
variance is the design effect ``deff`` (1 with one row per user). The confidence interval of the
quantile is the "outer" interval ``[Q(q − z·σ), Q(q + z·σ)]``, ``σ² = deff·q(1−q)/N`` (the
order-statistic interval of Woodruff 1952, widened for clustering), and the standard error
``se = (Q(q + zσ) − Q(q − zσ)) / 2z`` is the delta method ``σ/f(Q)`` with the density ``f``
estimated over that interval. Differences of two arms are then z-tests on
``Q̂_t − Q̂_c`` with ``se² = se_t² + se_c²``.

Bins: a positive value ``v`` falls in bin ``OFFSET + ⌊ln v / ln(1 + w)⌋``, zero in bin 0 and a
negative value in ``−OFFSET − ⌊ln(−v) / ln(1 + w)⌋``: bins are ordered like the values.

References:
    Woodruff, R. S. (1952). Confidence intervals for medians and other position measures.
    JASA 47.
    Deng, A., Knoblich, U. & Lu, J. (2018). Applying the delta method in metric analytics: a
    practical guide with novel ideas. KDD '18.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from mixai_ml.ab.stats import FloatArray

OFFSET = 2_000_000
"""Bin number of the positive bin ``[1, 1 + w)``; must exceed ``|ln v|/ln(1 + w)`` for all ``v``."""

IntArray = NDArray[np.int64]


def bin_index(values: ArrayLike, width: float) -> IntArray:
    """The bin of each value (the numpy twin of the SQL expression in :mod:`mixai_ml.ab.store`)."""
    v = np.asarray(values, dtype=float)
    step = np.log1p(width)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log(np.abs(v)) / step)
    index = np.where(v > 0, OFFSET + magnitude, np.where(v < 0, -OFFSET - magnitude, 0.0))
    return index.astype(np.int64)


def bin_bounds(bins: ArrayLike, width: float) -> tuple[FloatArray, FloatArray]:
    """Lower and upper edge of each bin (both 0 for the zero bin)."""
    b = np.asarray(bins, dtype=float)
    base = 1.0 + width
    positive = base ** (b - OFFSET)
    negative = -(base ** (-b - OFFSET))
    low = np.where(b > 0, positive, np.where(b < 0, negative * base, 0.0))
    high = np.where(b > 0, positive * base, np.where(b < 0, negative, 0.0))
    return low, high


class QuantileEstimate(NamedTuple):
    """The ``q``-quantile of each group with its standard error and confidence interval."""

    estimate: FloatArray
    se: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    design_effect: FloatArray
    """Variance of the share of rows below the quantile over its binomial variance."""


class Histograms(NamedTuple):
    """Histograms of many groups, one after another, each sorted by bin, empty bins left out.

    Per bin (shape ``(b,)``): the bin number, its rows, and the sums of the module docstring
    cumulated within the group up to and including the bin. A group may hold only the bins
    around the quantiles wanted (what the database sends): the cumulative sums still count
    every row below. Per group (shape ``(g,)``): its number of bins and its total rows.
    """

    group_sizes: IntArray
    bins: FloatArray
    rows: FloatArray
    cum_rows: FloatArray
    cum_sq: FloatArray
    cum_cross: FloatArray
    total_rows: FloatArray


def _value_at(
    rank: FloatArray, histograms: Histograms, width: float
) -> tuple[FloatArray, IntArray, NDArray[np.bool_]]:
    """The value at a continuous rank (1 … total rows of its group), the index of its bin, and
    whether the group's bins reach that rank (a group may hold only the bins near a quantile)."""
    sizes, bins, rows, cumulative = histograms[:4]
    starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    ends = np.maximum(starts + sizes - 1, starts)
    # offsets that make the cumulative rows increase across groups: one search for all
    offset = np.r_[0.0, np.cumsum(histograms.total_rows)[:-1]]
    ordered = cumulative + np.repeat(offset, sizes)
    index = np.searchsorted(ordered, offset + rank, side="left")
    index = np.clip(index, starts, ends)
    before = cumulative[index] - rows[index]
    fraction = np.clip((rank - before) / rows[index], 0.0, 1.0)
    low, high = bin_bounds(bins[index], width)
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = low * (high / low) ** fraction  # log-linear inside a positive/negative bin
    first_rank = cumulative[starts] - rows[starts]  # rows below the group's first bin
    reached = (rank > first_rank) & (rank <= cumulative[ends])
    return np.where(low != 0, geometric, 0.0), index, reached


def estimate_quantiles(
    histograms: Histograms,
    users: ArrayLike,
    user_rows_sq: ArrayLike,
    q: ArrayLike,
    width: float,
    alpha: float = 0.05,
) -> QuantileEstimate:
    """Quantiles of many histograms at once, with clustered standard errors and outer CIs.

    Args:
        histograms: The groups' bins (:class:`Histograms`).
        users: Users ``n`` of each group (users with at least one row).
        user_rows_sq: ``Σ_u N_u²`` of each group.
        q: Quantile of each group (e.g. 0.95).
        width: Relative bin width ``w``.
        alpha: Two-sided level of the interval.

    Returns:
        :class:`QuantileEstimate` of shape ``(g,)``; NaN for empty groups, and NaN standard
        error and interval where the interval reaches past a group's bins (the group holds
        only the bins near the quantile and its rows are very clustered).
    """
    histograms = Histograms(
        np.asarray(histograms.group_sizes, dtype=np.int64),
        *(np.asarray(a, dtype=float) for a in histograms[1:]),
    )
    sizes, total = histograms.group_sizes, histograms.total_rows
    n, n2, q = (np.asarray(a, dtype=float) for a in (users, user_rows_sq, q))
    if len(histograms.bins) == 0:
        empty = np.full(sizes.shape, np.nan)
        return QuantileEstimate(empty, empty, empty, empty, empty)
    estimate, index, _ = _value_at(np.maximum(q * total, 1.0), histograms, width)
    # design effect of the share of rows up to the estimate's bin, at that bin's upper edge
    with np.errstate(divide="ignore", invalid="ignore"):
        share = histograms.cum_rows[index] / total
        spread = (
            histograms.cum_sq[index] - 2.0 * share * histograms.cum_cross[index] + share**2 * n2
        )
        clustered = np.maximum(spread, 0.0) / (n - 1.0) * n / total**2
        binomial = share * (1.0 - share) / total
        design_effect = np.where(
            (binomial > 0) & (n > 1) & np.isfinite(clustered), clustered / binomial, 1.0
        )
        sigma = np.sqrt(design_effect * q * (1.0 - q) / total)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    low, _, low_reached = _value_at(np.clip((q - z * sigma) * total, 1.0, total), histograms, width)
    high, _, high_reached = _value_at(
        np.clip((q + z * sigma) * total, 1.0, total), histograms, width
    )
    valid = sizes > 0
    # an interval reaching past the bins at hand is unknown, never silently narrowed
    known = valid & low_reached & high_reached
    return QuantileEstimate(
        estimate=np.where(valid, estimate, np.nan),
        se=np.where(known, (high - low) / (2.0 * z), np.nan),
        ci_low=np.where(known, low, np.nan),
        ci_high=np.where(known, high, np.nan),
        design_effect=np.where(valid, design_effect, np.nan),
    )
