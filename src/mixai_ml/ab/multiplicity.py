"""Multiple-testing corrections for many families at once, in numpy.

Every experiment is one family (its primary and secondary comparisons). Correcting a whole
platform's results is one sort and two cumulative extrema over all rows, whatever the number of
experiments: no per-family Python loop (statsmodels' ``multipletests`` runs a garbage collection
on every Holm call, which made the per-experiment loop grow with experiments × heap).

Methods (``m`` = the number of finite p-values in the family, ``p₍ᵢ₎`` its sorted p-values):

* Holm (1979) step-down, family-wise error rate under any dependence:
  ``p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎)``;
* Benjamini & Hochberg (1995) step-up, false discovery rate under independence or positive
  dependence: ``p̃₍ᵢ₎ = min_{j≥i} min(1, m·p₍ⱼ₎/j)``.

Both equal ``statsmodels.stats.multitest.multipletests(method="holm" | "fdr_bh")`` family by
family (tested).

References:
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Stat. 6.
    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. JRSS-B 57.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Correction = Literal["holm", "bh"]
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh")

CORRECTION_NAMES: dict[Correction, str] = {
    "holm": "Holm's step-down correction",
    "bh": "the Benjamini-Hochberg correction",
}
CORRECTION_PROMISES: dict[Correction, str] = {
    "holm": "the chance of even one false win among them stays below",
    "bh": "the expected share of false wins among the wins stays below",
}


def adjust_p_values(
    p_values: ArrayLike, method: Correction = "holm", families: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Multiplicity-adjusted p-values, each family corrected on its own.

    Args:
        p_values: Raw p-values, shape ``(n,)``. NaNs stay NaN and do not count in ``m``.
        method: ``"holm"`` or ``"bh"``.
        families: Family label of each p-value (any sortable values, shape ``(n,)``);
            ``None``: one family.

    Returns:
        Adjusted p-values, shape ``(n,)``, in the input order.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional, got shape {p.shape}")
    labels = np.zeros(len(p), dtype=int) if families is None else np.asarray(families)
    if labels.shape != p.shape:
        raise ValueError(f"families has shape {labels.shape}, p_values {p.shape}")
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return adjusted
    _, family = np.unique(labels[finite], return_inverse=True)
    order = np.lexsort((p[finite], family))  # by family, then p
    family, sorted_p = family[order], p[finite][order]
    starts = np.flatnonzero(np.r_[True, family[1:] != family[:-1]])
    sizes = np.diff(np.r_[starts, family.size])
    m = np.repeat(sizes, sizes).astype(float)
    rank = np.arange(family.size) - np.repeat(starts, sizes)  # 0-based within its family
    # One row per family, padded: the running extrema then never cross a family border.
    grid = np.full((starts.size, int(sizes.max())), np.nan)
    rows = np.repeat(np.arange(starts.size), sizes)
    if method == "holm":
        grid[rows, rank] = np.minimum(1.0, (m - rank) * sorted_p)
        result = np.fmax.accumulate(grid, axis=1)[rows, rank]
    else:
        grid[rows, rank] = np.minimum(1.0, m * sorted_p / (rank + 1.0))
        result = np.fmin.accumulate(grid[:, ::-1], axis=1)[:, ::-1][rows, rank]
    adjusted[finite[order]] = result
    return adjusted
