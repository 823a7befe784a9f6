"""The effect statistics of many comparisons at once, whatever the metric type.

Every comparison is computed as numpy arrays: the cost grows with the number of comparisons,
never with experiments × something. Metric types:

* ``mean``: Welch's t on the per-user values (capped where configured), CUPED when
  ``<metric>__pre`` exists;
* ``proportion``: the two-proportion z-test when every user value is 0/1, else a z-test with the
  users' variances; CUPED as for means;
* ``ratio``: Σ over users of the row values / Σ of the row counts (per job), by the delta method
  (:mod:`mixai_ml.ab.ratio`), CUPED on the linearised values;
* ``quantile``: a quantile of all rows from histograms (:mod:`mixai_ml.ab.quantile`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_ml.ab.config import CONTROL, AbSettings
from mixai_ml.ab.cuped import cuped
from mixai_ml.ab.quantile import Histograms, QuantileEstimate, estimate_quantiles
from mixai_ml.ab.ratio import RatioSums, linearise
from mixai_ml.ab.sequential import confidence_sequence, effective_n
from mixai_ml.ab.stats import (
    ArmSums,
    Comparison,
    FloatArray,
    mean_and_variance,
    relative_lift,
    two_proportion_ztest,
    wald_ztest,
    welch_ttest,
)
from mixai_ml.ab.store import AbStatistics

logger = logging.getLogger(__name__)

MEAN_SUMS = ArmSums._fields
"""Columns of ``metric_totals`` that are the :class:`ArmSums` of a mean metric."""
RATIO_SUMS = (
    "n",
    "sum_s",
    "sum_c",
    "sum_s2",
    "sum_c2",
    "sum_cs",
    "n_x",
    "sum_x",
    "sum_x2",
    "sum_xs",
    "sum_xc",
    "sum_s_x",
    "sum_c_x",
)
"""Columns of ``metric_totals`` that are the :class:`RatioSums` of a ratio metric, in order."""
SUMS = tuple(dict.fromkeys((*MEAN_SUMS, *RATIO_SUMS, "n_nonbinary", "n_capped")))


# --- the statistics of many comparisons at once ------------------------------------------------


def _pick(choice: np.ndarray, options: Mapping[str, Comparison], field: str) -> FloatArray:
    result = np.full(choice.shape, np.nan)
    for name, comparison in options.items():
        result = np.where(
            choice == name, np.broadcast_to(getattr(comparison, field), choice.shape), result
        )
    return result


def compare(
    control: ArmSums,
    variant: ArmSums,
    *,
    test: Any,
    use_cuped: Any,
    alpha: float,
    tuning_n: Any,
    min_n: float,
) -> dict[str, FloatArray]:
    """Every effect statistic of ``variant`` vs ``control``, vectorised over array sums.

    Args:
        control, variant: Per-user sufficient statistics (a ratio metric's linearised ones).
        test: Per comparison (or one for all): ``"welch"`` (Welch's t), ``"z"`` (z-test with
            the users' variances) or ``"proportion"`` (two-proportion z-test with pooled
            variance and Wald CI, for 0/1 values; a z-test once CUPED adjusts them).
        use_cuped: Per comparison (or one): adjust with the covariate sums when present.
        alpha: Two-sided level.
        tuning_n: Users per variant at which the confidence sequence is tightest.
        min_n: No sequential result below this many (effective) users per variant.

    Returns:
        Arrays: raw ``mean_control``/``mean_variant``; ``control_value`` (the control mean the
        effect is measured from, CUPED-adjusted where used); ``abs_effect``, its CI,
        ``p_value``, ``se`` and ``df``; ``rel_effect`` with its delta-method CI;
        ``variance_reduction`` (0 without CUPED); ``cuped`` (bool); and the confidence
        sequence ``seq_ci_low``/``seq_ci_high``/``seq_p_value``.
    """
    n_c, n_t = np.asarray(control.n, dtype=float), np.asarray(variant.n, dtype=float)
    shape = np.broadcast(n_c, n_t).shape
    mean_c, var_c = mean_and_variance(n_c, control.sum_y, control.sum_y2)
    mean_t, var_t = mean_and_variance(n_t, variant.sum_y, variant.sum_y2)
    covariate = np.asarray(control.n_x, dtype=float) + np.asarray(variant.n_x, dtype=float)
    use = np.broadcast_to(np.asarray(use_cuped, dtype=bool), shape) & (covariate > 0)
    adjusted = cuped(control, variant)
    m_c, m_t = np.where(use, adjusted.mean_c, mean_c), np.where(use, adjusted.mean_t, mean_t)
    v_c, v_t = np.where(use, adjusted.var_c, var_c), np.where(use, adjusted.var_t, var_t)
    choice = np.broadcast_to(np.asarray(test, dtype=object), shape).astype(str)
    choice = np.where((choice == "proportion") & use, "z", choice)
    binomial = choice == "proportion"
    # binomial variances (ddof=0) of 0/1 values, as in the Wald interval of the z-test
    v_c = np.where(binomial, mean_c * (1.0 - mean_c), v_c)
    v_t = np.where(binomial, mean_t * (1.0 - mean_t), v_t)
    with np.errstate(invalid="ignore", divide="ignore"):  # every test on every row, then pick
        options = {
            "welch": welch_ttest(m_c, v_c, n_c, m_t, v_t, n_t, alpha),
            "z": wald_ztest(m_c, v_c, n_c, m_t, v_t, n_t, alpha),
            "proportion": two_proportion_ztest(mean_c, n_c, mean_t, n_t, alpha),
        }
    estimate, se = _pick(choice, options, "estimate"), _pick(choice, options, "se")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel, _, rel_low, rel_high = relative_lift(m_c, v_c / n_c, m_t, v_t / n_t, alpha)
    sequence = confidence_sequence(estimate, se, effective_n(n_c, n_t), tuning_n, alpha, min_n)
    return {
        "mean_control": mean_c,
        "mean_variant": mean_t,
        "control_value": m_c,
        "abs_effect": estimate,
        "abs_ci_low": _pick(choice, options, "ci_low"),
        "abs_ci_high": _pick(choice, options, "ci_high"),
        "p_value": _pick(choice, options, "p_value"),
        "se": se,
        "df": _pick(choice, options, "df"),
        "rel_effect": rel,
        "rel_ci_low": rel_low,
        "rel_ci_high": rel_high,
        "variance_reduction": np.where(use, adjusted.variance_reduction, 0.0),
        "cuped": use,
        "seq_ci_low": sequence.ci_low,
        "seq_ci_high": sequence.ci_high,
        "seq_p_value": sequence.p_value,
    }


def compare_quantiles(
    control: QuantileEstimate,
    variant: QuantileEstimate,
    n_c: Any,
    n_t: Any,
    *,
    alpha: float,
    tuning_n: Any,
    min_n: float,
) -> dict[str, FloatArray]:
    """The statistics of :func:`compare` for a difference of two quantiles (z-test)."""
    q_c, q_t = control.estimate, variant.estimate
    test = wald_ztest(q_c, control.se**2, 1.0, q_t, variant.se**2, 1.0, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel, _, rel_low, rel_high = relative_lift(q_c, control.se**2, q_t, variant.se**2, alpha)
    sequence = confidence_sequence(
        test.estimate, test.se, effective_n(n_c, n_t), tuning_n, alpha, min_n
    )
    return {
        "mean_control": q_c,
        "mean_variant": q_t,
        "control_value": q_c,
        "abs_effect": test.estimate,
        "abs_ci_low": test.ci_low,
        "abs_ci_high": test.ci_high,
        "p_value": test.p_value,
        "se": test.se,
        "df": test.df,
        "rel_effect": rel,
        "rel_ci_low": rel_low,
        "rel_ci_high": rel_high,
        "variance_reduction": np.zeros_like(q_c),
        "cuped": np.zeros(q_c.shape, dtype=bool),
        "seq_ci_low": sequence.ci_low,
        "seq_ci_high": sequence.ci_high,
        "seq_p_value": sequence.p_value,
    }


def _arm(frame: pd.DataFrame, prefix: str, ratio: np.ndarray) -> ArmSums:
    """Per-comparison sums of one arm: a mean's sums, or a ratio's linearised ones."""
    means = ArmSums(*(frame[f"{prefix}{name}"].to_numpy(dtype=float) for name in MEAN_SUMS))
    if not ratio.any():
        return means
    ratios = linearise(
        RatioSums(*(frame[f"{prefix}{name}"].to_numpy(dtype=float) for name in RATIO_SUMS))
    )
    return ArmSums(*(np.where(ratio, r, m) for r, m in zip(ratios, means, strict=True)))


def moment_statistics(frame: pd.DataFrame, settings: AbSettings) -> dict[str, FloatArray]:
    """:func:`compare` on the comparisons of ``frame`` (columns ``c_*``/``t_*``, ``kind``, …)."""
    kind = frame["kind"].to_numpy(dtype=str)
    binary = frame["binary"].to_numpy(dtype=bool)
    ratio = kind == "ratio"
    test = np.where(
        kind == "mean", "welch", np.where((kind == "proportion") & binary, "proportion", "z")
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return compare(
            _arm(frame, "c_", ratio),
            _arm(frame, "t_", ratio),
            test=test,
            use_cuped=settings.cuped,
            alpha=settings.alpha,
            tuning_n=frame["tuning_n"].to_numpy(dtype=float),
            min_n=settings.min_n_per_variant,
        )


def _quantile_table(statistics: AbStatistics, q: float, settings: AbSettings) -> pd.DataFrame:
    """The ``q``-quantile of every histogram: ``experiment_id, variant, source`` and estimates."""
    histograms = statistics.histograms
    keys = ["experiment_id", "variant", "metric"]
    groups = histograms.groupby(keys, sort=False).agg(
        bins=("bin", "size"), total_rows=("total_rows", "first")
    )
    groups = groups.reset_index()
    users = groups.merge(statistics.metric_totals[[*keys, "n", "sum_c2"]], on=keys, how="left")
    estimate = estimate_quantiles(
        Histograms(
            group_sizes=groups["bins"].to_numpy(),
            bins=histograms["bin"].to_numpy(dtype=float),
            rows=histograms["n_rows"].to_numpy(dtype=float),
            cum_rows=histograms["cum_rows"].to_numpy(dtype=float),
            cum_sq=histograms["cum_sq"].to_numpy(dtype=float),
            cum_cross=histograms["cum_cross"].to_numpy(dtype=float),
            total_rows=groups["total_rows"].to_numpy(dtype=float),
        ),
        users["n"].fillna(0.0).to_numpy(),
        users["sum_c2"].fillna(0.0).to_numpy(),
        np.full(len(groups), q),
        settings.statistics.histogram_bin_width,
        settings.alpha,
    )
    return groups[keys].rename(columns={"metric": "source"}).assign(**estimate._asdict())


def _quantile_statistics(
    frame: pd.DataFrame, statistics: AbStatistics, settings: AbSettings
) -> dict[str, np.ndarray]:
    """:func:`compare_quantiles` on the (quantile) comparisons of ``frame``, in its order."""
    on = ["experiment_id", "variant", "source"]
    result: dict[str, np.ndarray] = {}
    for q, rows in frame.groupby("quantile", sort=False):
        table = _quantile_table(statistics, float(q), settings)
        control = rows[["experiment_id", "source"]].assign(variant=CONTROL)
        control_arm, variant_arm = (
            QuantileEstimate(*(merged[f].to_numpy(dtype=float) for f in QuantileEstimate._fields))
            for merged in (
                control.merge(table, on=on, how="left"),
                rows[on].merge(table, on=on, how="left"),
            )
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = compare_quantiles(
                control_arm,
                variant_arm,
                rows["c_n"].to_numpy(dtype=float),
                rows["t_n"].to_numpy(dtype=float),
                alpha=settings.alpha,
                tuning_n=rows["tuning_n"].to_numpy(dtype=float),
                min_n=settings.min_n_per_variant,
            )
        unknown = sum(
            int(np.sum(np.isfinite(arm.estimate) & np.isnan(arm.se)))
            for arm in (control_arm, variant_arm)
        )
        if unknown:
            logger.warning(
                "%d quantile estimates (q=%g) have no interval: their rows are so clustered "
                "within users that it reaches past the bins read (mixai_ml.ab.store.SHARE_SPREAD)",
                unknown,
                q,
            )
        positions = frame.index.get_indexer(rows.index)
        for name, values in stats.items():
            result.setdefault(name, np.zeros(len(frame), dtype=values.dtype))[positions] = values
    return result


def comparison_statistics(
    frame: pd.DataFrame, statistics: AbStatistics, settings: AbSettings
) -> dict[str, FloatArray]:
    """The statistics of every comparison of ``frame``, whatever its metric type."""
    quantile = (frame["kind"] == "quantile").to_numpy()
    result = moment_statistics(frame, settings)
    if quantile.any():
        quantiles = _quantile_statistics(frame[quantile], statistics, settings)
        for name, values in quantiles.items():
            result[name] = result[name].copy()
            result[name][quantile] = values
    return result
