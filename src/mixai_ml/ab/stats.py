"""Fixed-horizon two-sample tests computed from sufficient statistics.

Every function takes per-arm summaries (user counts, means, variances) rather than raw values,
so the same code serves the pipeline (sums computed in SQL) and vectorised simulations (numpy
arrays of many experiments at once). Arguments broadcast like numpy ufuncs; "control" is the
baseline and effects are ``variant - control``.

References:
    Welch, B. L. (1947). The generalization of "Student's" problem when several different
    population variances are involved. Biometrika 34, 28-35.
    Casella & Berger (2002), Statistical Inference, 2nd ed., §10.3 (two-proportion z-test;
    delta method).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

FloatArray = NDArray[np.float64]
Values = float | FloatArray
"""A scalar or an array of values (one per experiment, day, ...)."""


class ArmSums(NamedTuple):
    """Sufficient statistics of one arm for one metric (scalars or arrays that broadcast).

    A user's value ``y`` is the mean of their rows of the metric; ``x`` the mean of their rows of
    the pre-exposure covariate ``<metric>__pre``. ``n_x`` users have ``x``; ``sum_y_x`` is ``Σy``
    over those users only (needed to impute a missing ``x``, see :mod:`mixai_ml.ab.cuped`).
    """

    n: Values
    sum_y: Values
    sum_y2: Values
    n_x: Values = 0.0
    sum_x: Values = 0.0
    sum_x2: Values = 0.0
    sum_xy: Values = 0.0
    sum_y_x: Values = 0.0


class Comparison(NamedTuple):
    """A two-sided test of ``variant - control`` with its confidence interval.

    ``df`` is the Welch-Satterthwaite degrees of freedom, ``inf`` for z-tests.
    """

    estimate: FloatArray
    se: FloatArray
    df: FloatArray
    statistic: FloatArray
    p_value: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray


def mean_and_variance(
    n: ArrayLike, sum_y: ArrayLike, sum_y2: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Sample mean and unbiased variance (``ddof=1``) from ``n``, ``Σy`` and ``Σy²``.

    The variance is clipped at 0 (rounding can push a constant sample slightly negative) and is
    NaN when ``n < 2``.
    """
    n, sum_y, sum_y2 = (np.asarray(a, dtype=float) for a in (n, sum_y, sum_y2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sum_y / n
        var = np.where(n > 1, (sum_y2 - sum_y * mean) / (n - 1), np.nan)
    return mean, np.maximum(var, 0.0)


def _two_sided(
    estimate: FloatArray, se: FloatArray, df: FloatArray, alpha: float, se_test: FloatArray
) -> Comparison:
    """p-value from ``estimate / se_test`` and the interval ``estimate ± q·se`` (t or normal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se_test
    finite_df = np.isfinite(df)
    safe_df = np.where(finite_df, df, 1.0)
    p_value = np.where(
        finite_df,
        2.0 * stats.t.sf(np.abs(statistic), safe_df),
        2.0 * stats.norm.sf(np.abs(statistic)),
    )
    quantile = np.where(
        finite_df, stats.t.ppf(1.0 - alpha / 2.0, safe_df), stats.norm.ppf(1.0 - alpha / 2.0)
    )
    return Comparison(
        estimate=estimate,
        se=se,
        df=df,
        statistic=statistic,
        p_value=p_value,
        ci_low=estimate - quantile * se,
        ci_high=estimate + quantile * se,
    )


def welch_ttest(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    alpha: float = 0.05,
) -> Comparison:
    """Welch's unequal-variance t-test and CI for a difference of means.

    ``se = sqrt(var_t/n_t + var_c/n_c)``; ``df`` by Welch-Satterthwaite. Equals
    ``statsmodels.stats.weightstats.ttest_ind(..., usevar="unequal")`` and
    ``CompareMeans.tconfint_diff(usevar="unequal")`` on the raw values.
    """
    mean_c, var_c, n_c, mean_t, var_t, n_t = (
        np.asarray(a, dtype=float) for a in (mean_c, var_c, n_c, mean_t, var_t, n_t)
    )
    a, b = var_t / n_t, var_c / n_c
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (n_t - 1) + b**2 / (n_c - 1))
    df = np.where(np.isfinite(df), df, np.nan)
    return _two_sided(mean_t - mean_c, se, df, alpha, se)


def wald_ztest(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    alpha: float = 0.05,
) -> Comparison:
    """Large-sample z-test and CI with the unpooled standard error ``sqrt(var_t/n_t + var_c/n_c)``.

    Used for CUPED-adjusted proportions, whose adjusted values are no longer 0/1.
    """
    mean_c, var_c, n_c, mean_t, var_t, n_t = (
        np.asarray(a, dtype=float) for a in (mean_c, var_c, n_c, mean_t, var_t, n_t)
    )
    se = np.sqrt(var_t / n_t + var_c / n_c)
    return _two_sided(mean_t - mean_c, se, np.full_like(se, np.inf), alpha, se)


def two_proportion_ztest(
    p_c: ArrayLike, n_c: ArrayLike, p_t: ArrayLike, n_t: ArrayLike, alpha: float = 0.05
) -> Comparison:
    """Two-proportion z-test (pooled SE under H0) with the Wald (unpooled) CI.

    The p-value equals ``statsmodels.stats.proportion.proportions_ztest`` and the interval
    ``confint_proportions_2indep(..., method="wald", compare="diff")``. ``se`` in the result is
    the unpooled one (the CI's), used downstream for relative lift and power.
    """
    p_c, n_c, p_t, n_t = (np.asarray(a, dtype=float) for a in (p_c, n_c, p_t, n_t))
    pooled = (p_c * n_c + p_t * n_t) / (n_c + n_t)
    se_pooled = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
    se = np.sqrt(p_t * (1.0 - p_t) / n_t + p_c * (1.0 - p_c) / n_c)
    return _two_sided(p_t - p_c, se, np.full_like(se, np.inf), alpha, se_pooled)


def relative_lift(
    mean_c: ArrayLike,
    var_mean_c: ArrayLike,
    mean_t: ArrayLike,
    var_mean_t: ArrayLike,
    alpha: float = 0.05,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Relative lift ``mean_t/mean_c - 1`` with a delta-method normal CI.

    Args:
        mean_c, mean_t: Arm means (CUPED-adjusted where applicable).
        var_mean_c, var_mean_t: Variances *of the means* (``var/n``); arms independent.
        alpha: Two-sided level.

    Returns:
        ``(lift, se, ci_low, ci_high)`` with
        ``se² = var_mean_t/mean_c² + mean_t²·var_mean_c/mean_c⁴`` (first-order Taylor expansion
        of the ratio). NaN where ``mean_c == 0``.
    """
    mean_c, var_mean_c, mean_t, var_mean_t = (
        np.asarray(a, dtype=float) for a in (mean_c, var_mean_c, mean_t, var_mean_t)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean_t / mean_c
        se = np.sqrt(var_mean_t / mean_c**2 + ratio**2 * var_mean_c / mean_c**2)
    ok = mean_c != 0
    lift = np.where(ok, ratio - 1.0, np.nan)
    se = np.where(ok, se, np.nan)
    half = stats.norm.ppf(1.0 - alpha / 2.0) * se
    return lift, se, lift - half, lift + half


def noninferiority_p_value(
    estimate: ArrayLike,
    se: ArrayLike,
    margin: ArrayLike,
    higher_is_better: ArrayLike,
    df: ArrayLike = np.inf,
) -> FloatArray:
    """One-sided p-value of H0 "the variant is worse than control by at least ``margin``".

    With direction ``s = +1`` when higher is better (else ``-1``), H0: ``s·Δ <= -margin`` against
    H1: ``s·Δ > -margin``; the statistic ``(s·Δ + margin)/se`` is referred to Student's t with
    ``df`` (or the normal when ``df`` is infinite). ``margin`` is absolute (metric units, >= 0).
    """
    estimate, se, margin, df = (np.asarray(a, dtype=float) for a in (estimate, se, margin, df))
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (sign * estimate + margin) / se
    finite_df = np.isfinite(df)
    return np.where(
        finite_df,
        stats.t.sf(statistic, np.where(finite_df, df, 1.0)),
        stats.norm.sf(statistic),
    )
