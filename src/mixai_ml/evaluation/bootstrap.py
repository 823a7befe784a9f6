"""Paired bootstrap confidence intervals of metric differences."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def paired_bootstrap(
    truth: np.ndarray,
    predicted_a: np.ndarray,
    predicted_b: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile CI of ``metric(truth, a) − metric(truth, b)`` on the same resamples.

    Both predictions are scored on each resample, so what they share (the
    difficulty of the drawn examples) cancels out. With ``groups`` (e.g. user
    ids) whole groups are drawn, since a user's jobs are not independent.

    Args:
        truth: targets, first axis = examples.
        predicted_a, predicted_b: two predictions of the same examples.
        metric: ``(truth, predicted) -> float``.
        groups: optional group label per example (cluster bootstrap).
        n_resamples: number of bootstrap resamples.
        confidence: coverage of the interval.
        seed: RNG seed (results are reproducible).

    Returns:
        ``difference`` on the full data, ``ci_low``, ``ci_high`` and
        ``n_resamples`` actually used (resamples where the metric is undefined,
        e.g. one class only, are dropped).
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(truth))
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    differences = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(unique), size=len(unique))
        rows = np.concatenate([members[g] for g in drawn])
        value = metric(truth[rows], predicted_a[rows]) - metric(truth[rows], predicted_b[rows])
        if np.isfinite(value):
            differences.append(value)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail]) if differences else (np.nan, np.nan)
    return {
        "difference": float(metric(truth, predicted_a) - metric(truth, predicted_b)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_resamples": len(differences),
    }
