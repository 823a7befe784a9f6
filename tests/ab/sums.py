"""Numpy oracles of the database's sufficient statistics, for simulations and SQL checks."""

from __future__ import annotations

import numpy as np

from mixai_ml.ab.quantile import Histograms, bin_index
from mixai_ml.ab.ratio import RatioSums
from mixai_ml.ab.stats import ArmSums


def arm_sums(y: np.ndarray, x: np.ndarray | None = None) -> ArmSums:
    """Sufficient statistics of each row of ``y`` (one simulated experiment per row)."""
    base = (np.full(len(y), float(y.shape[1])), y.sum(axis=1), (y**2).sum(axis=1))
    if x is None:
        return ArmSums(*base)
    return ArmSums(
        *base,
        np.full(len(y), float(y.shape[1])),
        x.sum(axis=1),
        (x**2).sum(axis=1),
        (x * y).sum(axis=1),
        y.sum(axis=1),
    )


def ratio_sums(a: np.ndarray, b: np.ndarray, x: np.ndarray | None = None) -> RatioSums:
    """Ratio sufficient statistics of each row of per-user numerators ``a``, denominators ``b``."""
    n = np.full(len(a), float(a.shape[1]))
    base = (n, a.sum(1), b.sum(1), (a**2).sum(1), (b**2).sum(1), (a * b).sum(1))
    if x is None:
        return RatioSums(*base)
    return RatioSums(
        *base, n, x.sum(1), (x**2).sum(1), (a * x).sum(1), (b * x).sum(1), a.sum(1), b.sum(1)
    )


def quantile_sums(
    group: np.ndarray, user: np.ndarray, values: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The histogram sums of :mod:`mixai_ml.ab.quantile` of the rows ``(group, user, value)``.

    Returns:
        ``(bins_per_group, group_of_bin, bin, n_rows, sq_rows, cross_rows)``, sorted by group
        then bin, for groups ``0 … group.max()``.
    """
    bins = bin_index(values, width)
    order = np.lexsort((bins, user, group))
    g, u, b = group[order], user[order], bins[order]
    first = np.r_[True, (g[1:] != g[:-1]) | (u[1:] != u[:-1]) | (b[1:] != b[:-1])]
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, len(b)])
    g, u, b = g[starts], u[starts], b[starts]
    new_user = np.r_[True, (g[1:] != g[:-1]) | (u[1:] != u[:-1])]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(len(counts)), 0))
    running = np.cumsum(counts)
    before = np.where(user_start > 0, running[np.maximum(user_start - 1, 0)], 0)
    cumulative = running - before  # I_u(b)
    user_id = np.cumsum(new_user) - 1
    totals = np.bincount(user_id, weights=counts)[user_id]  # N_u
    sq, cross = counts * (2 * cumulative - counts), counts * totals
    order = np.lexsort((b, g))
    g, b = g[order], b[order]
    first = np.r_[True, (g[1:] != g[:-1]) | (b[1:] != b[:-1])]
    starts = np.flatnonzero(first)
    sums = [np.add.reduceat(values[order], starts) for values in (counts, sq, cross)]
    sizes = np.bincount(g[starts], minlength=int(group.max()) + 1)
    return sizes, g[starts], b[starts], *sums


def histograms(
    sizes: np.ndarray, bins: np.ndarray, rows: np.ndarray, sq: np.ndarray, cross: np.ndarray
) -> Histograms:
    """Full :class:`Histograms` from per-bin sums: cumulated within each group."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]

    def within(values: np.ndarray) -> np.ndarray:
        running = np.cumsum(values, dtype=float)
        before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0.0)
        return running - before[group]

    cum_rows = within(rows)
    totals = np.bincount(group, weights=rows, minlength=len(sizes))
    return Histograms(sizes, bins, rows, cum_rows, within(sq), within(cross), totals)
