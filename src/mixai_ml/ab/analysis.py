"""Analysis of every experiment from database sufficient statistics (docs/data_contracts.md §6).

Input frames (computed by SQL, see ``conf/base/catalog_ab_analysis.yml``):

* assignment counts: ``experiment_id, variant, n_assigned``;
* metric statistics: ``experiment_id, variant, metric, day, n, sum_y, sum_y2, min_y, max_y``;
* covariate statistics: ``experiment_id, variant, metric, day, n_x, sum_x, sum_x2, sum_xy,
  sum_y_x`` over the users having both the metric and ``<metric>__pre``.

``day`` is the date of a user's first value of the metric: sums over days are the totals and
cumulative sums give the sequential path. :func:`combine_daily_stats` joins the last two into the
:class:`~mixai_ml.ab.stats.ArmSums` fields.

Output: one row per experiment × metric × non-control variant with the fixed-horizon test
(Welch t for means, two-proportion z for proportions; CUPED when ``<metric>__pre`` exists),
relative lift with a delta-method CI, Holm/BH-adjusted p-values over primary and secondary
metrics, non-inferiority of guardrails, power/MDE/sample size, the always-valid confidence
sequence, the sample-ratio check and the experiment's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from mixai_ml.ab.config import CONTROL, PRE_SUFFIX, AbSettings, MetricSpec
from mixai_ml.ab.cuped import cuped
from mixai_ml.ab.formatting import p_value as p_value_text
from mixai_ml.ab.power import power_analysis
from mixai_ml.ab.sequential import confidence_sequence, effective_n
from mixai_ml.ab.srm import srm_p_value
from mixai_ml.ab.stats import (
    ArmSums,
    FloatArray,
    adjust_p_values,
    mean_and_variance,
    noninferiority_p_value,
    relative_lift,
    two_proportion_ztest,
    wald_ztest,
    welch_ttest,
)

logger = logging.getLogger(__name__)

Decision = Literal["ship", "keep_running", "stop", "invalid"]

CONTRACT_COLUMNS: tuple[str, ...] = (
    "experiment_id",
    "metric",
    "variant",
    "control_variant",
    "n_control",
    "n_variant",
    "mean_control",
    "mean_variant",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_value_adjusted",
    "significant",
    "srm_p_value",
    "decision",
)
"""The ``ab_test_results`` columns fixed by docs/data_contracts.md §6, in that order."""

EXTRA_COLUMNS: tuple[str, ...] = (
    "metric_type",
    "role",
    "cuped",
    "variance_reduction",
    "noninferiority_margin",
    "noninferiority_p_value",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
    "seq_significant",
    "power",
    "mde",
    "required_n_per_variant",
    "analysed_at",
)
"""Further columns of ``ab_test_results`` (``mixai_ml.db.schema``), after the contract ones."""

RESULT_COLUMNS = CONTRACT_COLUMNS + EXTRA_COLUMNS
DECISION_COLUMNS = (
    "experiment_id",
    "decision",
    "ship_variant",
    "reasons",
    "srm_p_value",
    "assigned",
    "weights",
)
PATH_COLUMNS = (
    "experiment_id",
    "metric",
    "variant",
    "day",
    "n_control",
    "n_variant",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
)
SUM_COLUMNS: tuple[str, ...] = ArmSums._fields


@dataclass(frozen=True)
class AbAnalysis:
    """Results table, one decision row per experiment, and the primary metrics' daily paths."""

    results: pd.DataFrame
    decisions: pd.DataFrame
    paths: pd.DataFrame


def combine_daily_stats(metric_stats: pd.DataFrame, covariate_stats: pd.DataFrame) -> pd.DataFrame:
    """Daily :class:`ArmSums` of every analysed metric: metric sums joined with covariate sums.

    Rows with a NULL variant (metric rows of users without an assignment) and ``<metric>__pre``
    rows of ``metric_stats`` (covariates, not metrics) are dropped; days or variants without
    covariate data get zero covariate sums.
    """
    keys = ["experiment_id", "variant", "metric", "day"]
    metrics = metric_stats[
        metric_stats["variant"].notna()
        & ~metric_stats["metric"].astype(str).str.endswith(PRE_SUFFIX)
    ]
    covariates = covariate_stats.loc[covariate_stats["variant"].notna(), [*keys, *SUM_COLUMNS[3:]]]
    daily = metrics.merge(covariates, on=keys, how="left", validate="one_to_one")
    daily[list(SUM_COLUMNS)] = daily[list(SUM_COLUMNS)].astype(float).fillna(0.0)
    return daily


def is_binary(n: float, sum_y: float, sum_y2: float, min_y: float, max_y: float) -> bool:
    """Whether every user value is 0 or 1: in [0, 1] and ``Σy² = Σy`` (``y² < y`` inside)."""
    return bool(min_y >= 0.0 and max_y <= 1.0 and abs(sum_y2 - sum_y) <= 1e-9 * max(n, 1.0))


def compare(
    control: ArmSums,
    variant: ArmSums,
    *,
    proportion: bool,
    use_cuped: bool,
    alpha: float,
    tuning_n: float,
    min_n: float,
    binary: bool = True,
) -> dict[str, FloatArray]:
    """Every effect statistic of ``variant`` vs ``control`` (vectorised over array sums).

    Returns a dict of arrays: raw ``mean_control``/``mean_variant``; ``abs_effect``, its CI and
    ``p_value`` (Welch t for means; for proportions the pooled two-proportion z-test with the
    Wald CI when every user value is 0/1 (``binary``), else a z-test with the users' sample
    variances; with CUPED the t/z test on adjusted values); ``rel_effect`` and its delta-method CI;
    ``se`` and ``df`` of the effect; ``sd`` (pooled per-user sd of the analysed values);
    ``control_mean_adjusted``; ``variance_reduction`` (0 without CUPED); and the confidence
    sequence ``seq_ci_low``/``seq_ci_high``/``seq_p_value``.
    """
    n_c, n_t = np.asarray(control.n, dtype=float), np.asarray(variant.n, dtype=float)
    mean_c, var_c = mean_and_variance(n_c, control.sum_y, control.sum_y2)
    mean_t, var_t = mean_and_variance(n_t, variant.sum_y, variant.sum_y2)
    if use_cuped:
        adjusted = cuped(control, variant)
        m_c, v_c, m_t, v_t = adjusted.mean_c, adjusted.var_c, adjusted.mean_t, adjusted.var_t
        test_fn = wald_ztest if proportion else welch_ttest
        test = test_fn(m_c, v_c, n_c, m_t, v_t, n_t, alpha)
        reduction = adjusted.variance_reduction
    elif proportion and binary:
        # binomial variances (ddof=0), as in the Wald interval of the z-test
        m_c, v_c, m_t, v_t = mean_c, mean_c * (1 - mean_c), mean_t, mean_t * (1 - mean_t)
        test = two_proportion_ztest(mean_c, n_c, mean_t, n_t, alpha)
        reduction = np.zeros_like(mean_c)
    elif proportion:
        # users with several rows have rates, not 0/1: their sample variance is the right one
        m_c, v_c, m_t, v_t = mean_c, var_c, mean_t, var_t
        test = wald_ztest(mean_c, var_c, n_c, mean_t, var_t, n_t, alpha)
        reduction = np.zeros_like(mean_c)
    else:
        m_c, v_c, m_t, v_t = mean_c, var_c, mean_t, var_t
        test = welch_ttest(mean_c, var_c, n_c, mean_t, var_t, n_t, alpha)
        reduction = np.zeros_like(mean_c)
    rel, _, rel_low, rel_high = relative_lift(m_c, v_c / n_c, m_t, v_t / n_t, alpha)
    sequence = confidence_sequence(
        test.estimate, test.se, effective_n(n_c, n_t), tuning_n, alpha, min_n
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(((n_c - 1) * v_c + (n_t - 1) * v_t) / (n_c + n_t - 2))
    return {
        "mean_control": mean_c,
        "mean_variant": mean_t,
        "control_mean_adjusted": m_c,
        "abs_effect": test.estimate,
        "abs_ci_low": test.ci_low,
        "abs_ci_high": test.ci_high,
        "p_value": test.p_value,
        "se": test.se,
        "df": test.df,
        "sd": sd,
        "rel_effect": rel,
        "rel_ci_low": rel_low,
        "rel_ci_high": rel_high,
        "variance_reduction": reduction,
        "seq_ci_low": sequence.ci_low,
        "seq_ci_high": sequence.ci_high,
        "seq_p_value": sequence.p_value,
    }


def _arm(frame: pd.DataFrame | pd.Series) -> ArmSums:
    return ArmSums(*(frame[column].to_numpy(dtype=float) for column in SUM_COLUMNS))


def _scalar_arm(row: pd.Series | None) -> ArmSums:
    if row is None:
        return ArmSums(*([0.0] * len(SUM_COLUMNS)))
    return ArmSums(*(float(row[column]) for column in SUM_COLUMNS))


def _row(frame: pd.DataFrame, key: str) -> pd.Series | None:
    return frame.loc[key] if key in frame.index else None


def _metric_order(metrics: Iterable[str], settings: AbSettings) -> list[str]:
    configured = [name for name in settings.metrics if name in set(metrics)]
    return configured + sorted(set(metrics) - set(configured))


@dataclass(frozen=True)
class _Metric:
    """One metric of one experiment, as analysed."""

    experiment_id: str
    spec: MetricSpec
    binary: bool
    """Every user value is 0/1 (then proportions get the classic two-proportion z-test)."""

    def compare(
        self, control: ArmSums, variant: ArmSums, settings: AbSettings
    ) -> tuple[bool, dict[str, FloatArray]]:
        """Whether CUPED applies (covariate present at the last look) and :func:`compare`."""
        covariate = np.asarray(control.n_x, dtype=float) + np.asarray(variant.n_x, dtype=float)
        use_cuped = bool(settings.cuped and np.ravel(covariate)[-1] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = compare(
                control,
                variant,
                proportion=self.spec.kind == "proportion",
                use_cuped=use_cuped,
                alpha=settings.alpha,
                tuning_n=settings.tuning_n(self.experiment_id),
                min_n=settings.min_n_per_variant,
                binary=self.binary,
            )
        return use_cuped, stats


def _comparison_row(
    metric: _Metric,
    variant: str,
    control: pd.Series | None,
    treated: pd.Series | None,
    settings: AbSettings,
    ratio: float,
) -> dict[str, Any]:
    spec = metric.spec
    c, t = _scalar_arm(control), _scalar_arm(treated)
    use_cuped, arrays = metric.compare(c, t, settings)
    stats = {key: float(value) for key, value in arrays.items()}
    margin = spec.absolute_margin(stats["mean_control"])
    ni_p = (
        float(
            noninferiority_p_value(
                stats["abs_effect"], stats["se"], margin, spec.higher_is_better, stats["df"]
            )
        )
        if margin is not None and spec.role == "guardrail"
        else np.nan
    )
    sign = 1.0 if spec.higher_is_better else -1.0
    design = power_analysis(
        proportion=spec.kind == "proportion" and metric.binary and not use_cuped,
        mean_c=stats["control_mean_adjusted"],
        sd=stats["sd"],
        n_c=float(c.n),
        n_t=float(t.n),
        target_effect=sign * spec.mde * abs(stats["control_mean_adjusted"]),
        ratio=ratio,
        alpha=settings.alpha,
        target_power=settings.target_power,
    )
    return {
        "experiment_id": metric.experiment_id,
        "metric": spec.name,
        "variant": variant,
        "control_variant": CONTROL,
        "n_control": int(c.n),
        "n_variant": int(t.n),
        **{key: stats[key] for key in CONTRACT_COLUMNS[6:15]},
        "metric_type": spec.kind,
        "higher_is_better": spec.higher_is_better,
        "role": spec.role,
        "cuped": use_cuped,
        "variance_reduction": stats["variance_reduction"] if use_cuped else np.nan,
        "noninferiority_margin": np.nan if margin is None else margin,
        "noninferiority_p_value": ni_p,
        **{key: stats[key] for key in ("seq_ci_low", "seq_ci_high", "seq_p_value")},
        "power": design.power,
        "mde": design.mde,
        "required_n_per_variant": design.required_n_per_variant,
    }


def _adjust(rows: pd.DataFrame, settings: AbSettings) -> pd.DataFrame:
    """Multiplicity-adjusted fixed and sequential p-values and the significance flags.

    Primary and secondary rows of one experiment form the family; guardrails keep their raw
    p-values (``decisive_p``), erring towards stopping.
    """
    tested = rows["role"] != "guardrail"
    rows["p_value_adjusted"] = np.nan
    rows["seq_p_value_adjusted"] = rows["seq_p_value"]
    if tested.any():
        rows.loc[tested, "p_value_adjusted"] = adjust_p_values(
            rows.loc[tested, "p_value"], settings.correction
        )
        rows.loc[tested, "seq_p_value_adjusted"] = adjust_p_values(
            rows.loc[tested, "seq_p_value"], settings.correction
        )
    rows["decisive_p"] = rows["p_value_adjusted"].where(tested, rows["p_value"])
    rows["significant"] = (rows["decisive_p"] < settings.alpha).to_numpy(dtype=bool)
    rows["seq_significant"] = (rows["seq_p_value_adjusted"] < settings.alpha).to_numpy(dtype=bool)
    return rows


class _Evidence:
    """Reads one result row under the configured decision basis."""

    def __init__(self, row: pd.Series, settings: AbSettings) -> None:
        self.row = row
        self.sign = 1.0 if row["higher_is_better"] else -1.0
        sequential = settings.decision_basis == "sequential"
        self.significant = bool(row["seq_significant"] if sequential else row["significant"])
        self.p = float(row["seq_p_value_adjusted"] if sequential else row["decisive_p"])
        self.low = float(row["seq_ci_low"] if sequential else row["abs_ci_low"])
        self.high = float(row["seq_ci_high"] if sequential else row["abs_ci_high"])
        self.alpha = settings.alpha
        self.sequential = sequential

    @property
    def good(self) -> bool:
        return self.significant and self.sign * float(self.row["abs_effect"]) > 0

    @property
    def bad(self) -> bool:
        return self.significant and self.sign * float(self.row["abs_effect"]) < 0

    @property
    def noninferior(self) -> bool:
        """Worse by less than the margin, shown at ``alpha``; without one: not shown worse."""
        margin = float(self.row["noninferiority_margin"])
        if not np.isfinite(margin):
            return not self.bad and np.isfinite(self.p)
        if self.sequential:
            worst = self.low if self.sign > 0 else -self.high
            return bool(np.isfinite(worst) and worst > -margin)
        return bool(float(self.row["noninferiority_p_value"]) < self.alpha)

    def describe(self) -> str:
        row = self.row
        rel = float(row["rel_effect"])
        effect = f"{float(row['abs_effect']):+.4g}" + (f" ({rel:+.1%})" if np.isfinite(rel) else "")
        return f"{row['metric']} {effect}, p={p_value_text(self.p)}"


def _decide(
    experiment_rows: pd.DataFrame, srm_p: float, settings: AbSettings
) -> tuple[Decision, str | None, list[str]]:
    basis = (
        "always-valid sequential test"
        if settings.decision_basis == "sequential"
        else "fixed-horizon test"
    )
    if srm_p < settings.srm_alpha:
        return (
            "invalid",
            None,
            [f"sample-ratio mismatch (SRM p={p_value_text(srm_p)} < {settings.srm_alpha})"],
        )
    if experiment_rows.empty:
        return "keep_running", None, ["no metric data yet"]
    candidates: list[tuple[float, str, list[str]]] = []
    stop_reasons: list[str] = []
    waiting: list[str] = []
    for variant, rows in experiment_rows.groupby("variant", sort=True):
        evidence = [_Evidence(row, settings) for _, row in rows.iterrows()]
        primary = [e for e in evidence if e.row["role"] == "primary"]
        guardrails = [e for e in evidence if e.row["role"] == "guardrail"]
        wins = [e for e in primary if e.good]
        losses = [e for e in primary if e.bad]
        harms = [e for e in guardrails if e.bad and not e.noninferior]
        unproven = [e for e in guardrails if not e.noninferior]
        stop_reasons += [f"{variant}: guardrail {e.describe()} is worse" for e in harms]
        stop_reasons += [f"{variant}: primary {e.describe()} is worse" for e in losses]
        if not primary:
            waiting.append(f"{variant}: no primary metric")
        elif wins and not losses and not unproven:
            score = max(e.sign * float(e.row["rel_effect"]) for e in wins)
            reasons = [f"{variant}: primary {e.describe()} is better" for e in wins]
            reasons += [f"{variant}: guardrail {e.row['metric']} non-inferior" for e in guardrails]
            candidates.append((score if np.isfinite(score) else 0.0, str(variant), reasons))
        else:
            waiting += [
                f"{variant}: primary {e.describe()} "
                + ("is better, guardrails pending" if e.good else "not significant")
                for e in primary
            ]
            waiting += [
                f"{variant}: guardrail {e.row['metric']} non-inferiority not shown yet"
                for e in unproven
                if e not in harms
            ]
    if candidates:
        _, best, reasons = max(candidates)
        return "ship", best, [*reasons, f"basis: {basis}"]
    if stop_reasons:
        return "stop", None, [*stop_reasons, f"basis: {basis}"]
    return "keep_running", None, [*waiting, f"basis: {basis}"]


def _sequential_path(
    metric: _Metric, variant: str, daily: pd.DataFrame, settings: AbSettings
) -> pd.DataFrame:
    """Cumulative daily statistics of one primary metric and variant (the report's path plot)."""
    arms = daily[daily["variant"].isin([CONTROL, variant])]
    cumulative = (
        arms.pivot_table(
            index="day", columns="variant", values=list(SUM_COLUMNS), aggfunc="sum", fill_value=0.0
        )
        .sort_index()
        .cumsum()
    )
    present = set(cumulative.columns.get_level_values(1)) if not cumulative.empty else set()
    if not {CONTROL, variant} <= present:
        return pd.DataFrame(columns=list(PATH_COLUMNS))
    control = _arm(cumulative.xs(CONTROL, axis=1, level=1))
    treated = _arm(cumulative.xs(variant, axis=1, level=1))
    _, stats = metric.compare(control, treated, settings)
    return pd.DataFrame(
        {
            "experiment_id": metric.experiment_id,
            "metric": metric.spec.name,
            "variant": variant,
            "day": cumulative.index.astype(str),
            "n_control": np.asarray(control.n, dtype=int),
            "n_variant": np.asarray(treated.n, dtype=int),
            **{key: stats[key] for key in PATH_COLUMNS[6:]},
        }
    )


def analyse_experiments(
    assignment_counts: pd.DataFrame,
    daily_stats: pd.DataFrame,
    settings: AbSettings,
    analysed_at: datetime,
) -> AbAnalysis:
    """Analyse every experiment that has assignments.

    Args:
        assignment_counts: ``experiment_id, variant, n_assigned``.
        daily_stats: Daily sufficient statistics, :func:`combine_daily_stats`.
        settings: The validated configuration.
        analysed_at: Timestamp written to every row (UTC).

    Returns:
        :class:`AbAnalysis` with ``results`` in :data:`RESULT_COLUMNS` order, ``decisions``
        (:data:`DECISION_COLUMNS`) and ``paths`` (:data:`PATH_COLUMNS`).
    """
    daily = daily_stats
    keys = ["experiment_id", "variant", "metric"]
    totals = daily.groupby(keys, sort=True).agg(
        {**dict.fromkeys(SUM_COLUMNS, "sum"), "min_y": "min", "max_y": "max"}
    )
    counts = assignment_counts.groupby(["experiment_id", "variant"])["n_assigned"].sum()
    experiments = sorted(set(counts.index.get_level_values(0)))
    result_rows: list[dict[Any, Any]] = []
    decision_rows: list[dict[str, Any]] = []
    paths: list[pd.DataFrame] = []
    for experiment_id in experiments:
        assigned = {str(k): int(v) for k, v in counts.loc[experiment_id].items()}
        weights = settings.weights(experiment_id, sorted(assigned))
        srm_p = srm_p_value(assigned, weights)
        summary = {
            "experiment_id": experiment_id,
            "srm_p_value": srm_p,
            "assigned": ", ".join(f"{k}={v}" for k, v in sorted(assigned.items())),
            "weights": ", ".join(f"{k}={v:g}" for k, v in sorted(weights.items())),
        }
        if CONTROL not in assigned:
            logger.warning("experiment %s has no variant named %r: skipped", experiment_id, CONTROL)
            decision_rows.append(
                {
                    **summary,
                    "decision": "invalid",
                    "ship_variant": None,
                    "reasons": f"no variant named {CONTROL!r}",
                }
            )
            continue
        exp_totals = (
            totals.loc[experiment_id]
            if experiment_id in totals.index.get_level_values(0)
            else totals.iloc[:0].droplevel(0)
        )
        metric_names = exp_totals.index.get_level_values("metric").unique()
        variants = sorted(set(assigned) | set(exp_totals.index.get_level_values("variant")))
        rows: list[dict[str, Any]] = []
        for metric in _metric_order(metric_names, settings):
            per_variant = exp_totals[
                exp_totals.index.get_level_values("metric") == metric
            ].droplevel("metric")
            binary = is_binary(
                float(per_variant["n"].sum()),
                float(per_variant["sum_y"].sum()),
                float(per_variant["sum_y2"].sum()),
                float(per_variant["min_y"].min()),
                float(per_variant["max_y"].max()),
            )
            analysed = _Metric(experiment_id, settings.metric_spec(metric, binary), binary)
            control_row = _row(per_variant, CONTROL)
            for variant in variants:
                if variant == CONTROL:
                    continue
                treated = _row(per_variant, variant)
                ratio = (weights.get(variant) or 1.0) / (weights.get(CONTROL) or 1.0)
                rows.append(
                    _comparison_row(analysed, variant, control_row, treated, settings, ratio)
                )
                if analysed.spec.role == "primary":
                    exp_daily = daily[
                        (daily["experiment_id"] == experiment_id) & (daily["metric"] == metric)
                    ]
                    paths.append(_sequential_path(analysed, variant, exp_daily, settings))
        frame = _adjust(pd.DataFrame(rows), settings) if rows else pd.DataFrame()
        decision, ship, reasons = _decide(frame, srm_p, settings)
        decision_rows.append(
            {**summary, "decision": decision, "ship_variant": ship, "reasons": "; ".join(reasons)}
        )
        if not frame.empty:
            frame["srm_p_value"] = srm_p
            frame["decision"] = decision
            result_rows += [dict(record) for record in frame.to_dict("records")]
    results = pd.DataFrame(result_rows, columns=[*RESULT_COLUMNS])
    results["analysed_at"] = pd.Timestamp(analysed_at).tz_convert("UTC")  # aware input required
    for column in ("significant", "cuped", "seq_significant"):
        results[column] = results[column].astype(bool)
    for column in ("n_control", "n_variant"):
        results[column] = results[column].astype("int64")
    non_empty_paths = [path for path in paths if not path.empty]
    return AbAnalysis(
        results=results.reset_index(drop=True),
        decisions=pd.DataFrame(decision_rows, columns=list(DECISION_COLUMNS)),
        paths=(
            pd.concat(non_empty_paths, ignore_index=True)
            if non_empty_paths
            else pd.DataFrame(columns=list(PATH_COLUMNS))
        ),
    )
