"""Analysis of every experiment from the database's sufficient statistics.

Input: :class:`mixai_ml.ab.store.AbStatistics` (small frames of sums, no raw rows). Output: one
row per experiment × metric × non-control variant with the fixed-horizon test, relative lift with
a delta-method CI, multiplicity-adjusted p-values (each experiment's primary and secondary
comparisons form one family), non-inferiority of guardrails, power/MDE/sample size, the
always-valid confidence sequence, both sample-ratio checks, the corrections in words, and each
experiment's decision.

The statistics are in :mod:`mixai_ml.ab.effects`, the comparisons in
:mod:`mixai_ml.ab.comparisons`, the sample-ratio checks and decisions in
:mod:`mixai_ml.ab.decisions`; this module puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from mixai_ml.ab.comparisons import caps, comparisons, daily_paths
from mixai_ml.ab.config import CONTROL, AbSettings
from mixai_ml.ab.decisions import decide_experiments, sample_ratio_checks
from mixai_ml.ab.effects import comparison_statistics
from mixai_ml.ab.explain import corrections
from mixai_ml.ab.multiplicity import adjust_p_values
from mixai_ml.ab.power import power_analysis
from mixai_ml.ab.stats import noninferiority_p_value
from mixai_ml.ab.store import AbStatistics

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
    "statistic",
    "role",
    "cuped",
    "variance_reduction",
    "cap",
    "capped_share",
    "noninferiority_margin",
    "noninferiority_p_value",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
    "seq_significant",
    "srm_seq_p_value",
    "power",
    "mde",
    "required_n_per_variant",
    "family_size",
    "corrections",
    "analysed_at",
)
"""Further columns of ``ab_test_results`` (``mixai_ml.db.schema``), after the contract ones."""

RESULT_COLUMNS = CONTRACT_COLUMNS + EXTRA_COLUMNS


@dataclass(frozen=True)
class AbAnalysis:
    """Results table, one decision row per experiment, and the primary metrics' daily paths."""

    results: pd.DataFrame
    decisions: pd.DataFrame
    paths: pd.DataFrame


# --- the analysis --------------------------------------------------------------------------------


def analyse_experiments(
    statistics: AbStatistics, settings: AbSettings, analysed_at: datetime
) -> AbAnalysis:
    """Analyse every experiment that has assignments.

    Args:
        statistics: The sufficient statistics (:func:`mixai_ml.ab.store.refresh_statistics`).
        settings: The validated configuration.
        analysed_at: Timestamp written to every row (timezone-aware).

    Returns:
        :class:`AbAnalysis` with ``results`` in :data:`RESULT_COLUMNS` order, ``decisions``
        (:data:`mixai_ml.ab.decisions.DECISION_COLUMNS`) and ``paths``
        (:data:`mixai_ml.ab.comparisons.PATH_COLUMNS`).
    """
    checks = sample_ratio_checks(statistics, settings)
    assigned, expected, srm = checks.assigned, checks.expected, checks.p_values
    variants = pd.DataFrame(
        sorted(
            {(e, v) for e, counts in assigned.items() for v in counts}
            | set(
                zip(
                    statistics.metric_totals["experiment_id"],
                    statistics.metric_totals["variant"],
                    strict=True,
                )
            )
        ),
        columns=["experiment_id", "variant"],
    )
    variants = variants[variants["experiment_id"].isin(assigned)]
    frame = comparisons(statistics, settings, variants)
    stats = comparison_statistics(frame, statistics, settings)
    results = pd.DataFrame(
        {
            "experiment_id": frame["experiment_id"],
            "metric": frame["metric"],
            "variant": frame["variant"],
            "control_variant": CONTROL,
            "n_control": frame["c_n"].astype("int64"),
            "n_variant": frame["t_n"].astype("int64"),
            **{name: stats[name] for name in CONTRACT_COLUMNS[6:15]},
        }
    )
    control_value = stats["control_value"]
    sign = np.where(frame["higher_is_better"].to_numpy(dtype=bool), 1.0, -1.0)
    margin = frame["margin"].to_numpy(dtype=float)
    margin = np.where(
        frame["margin_relative"].to_numpy(dtype=bool), margin * np.abs(control_value), margin
    )
    guardrail = (frame["role"] == "guardrail").to_numpy()
    margin = np.where(guardrail, margin, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ni_p = noninferiority_p_value(
            stats["abs_effect"], stats["se"], margin, frame["higher_is_better"], stats["df"]
        )
    design = power_analysis(
        se=stats["se"],
        n_c=frame["c_n"],
        n_t=frame["t_n"],
        target_effect=sign * frame["mde"].to_numpy(dtype=float) * np.abs(control_value),
        ratio=[
            (expected[e][0].get(v) or 1.0) / (expected[e][0].get(CONTROL) or 1.0)
            for e, v in zip(frame["experiment_id"], frame["variant"], strict=True)
        ],
        alpha=settings.alpha,
        target_power=settings.target_power,
    )
    cap, capped_share = caps(frame, statistics)
    results = results.assign(
        metric_type=frame["kind"],
        statistic=frame["statistic"],
        role=frame["role"],
        cuped=stats["cuped"],
        variance_reduction=np.where(stats["cuped"], stats["variance_reduction"], np.nan),
        cap=cap,
        capped_share=capped_share,
        noninferiority_margin=margin,
        noninferiority_p_value=np.where(np.isfinite(margin), ni_p, np.nan),
        seq_ci_low=stats["seq_ci_low"],
        seq_ci_high=stats["seq_ci_high"],
        seq_p_value=stats["seq_p_value"],
        power=design.power,
        mde=design.mde,
        required_n_per_variant=design.required_n_per_variant,
        higher_is_better=frame["higher_is_better"].to_numpy(dtype=bool),
    )
    # one family per experiment: its primary and secondary comparisons
    tested = ~guardrail
    family = np.where(tested, results["experiment_id"].to_numpy(dtype=object), None)
    families = pd.Series(family).where(tested)
    results["family_size"] = (
        families.map(families.value_counts()).fillna(0).astype("int64").to_numpy()
    )
    results["p_value_adjusted"] = np.nan
    results["seq_p_value_adjusted"] = results["seq_p_value"]
    if tested.any():
        labels = results.loc[tested, "experiment_id"].to_numpy()
        results.loc[tested, "p_value_adjusted"] = adjust_p_values(
            results.loc[tested, "p_value"].to_numpy(), settings.correction, labels
        )
        results.loc[tested, "seq_p_value_adjusted"] = adjust_p_values(
            results.loc[tested, "seq_p_value"].to_numpy(), settings.correction, labels
        )
    results["decisive_p"] = results["p_value_adjusted"].where(tested, results["p_value"])
    results["significant"] = (results["decisive_p"] < settings.alpha).to_numpy(dtype=bool)
    results["seq_significant"] = (results["seq_p_value_adjusted"] < settings.alpha).to_numpy(
        dtype=bool
    )
    srm_fixed = results["experiment_id"].map(lambda e: srm[e][0])
    srm_seq = results["experiment_id"].map(lambda e: srm[e][1])
    results["srm_p_value"] = srm_fixed.to_numpy(dtype=float)
    results["srm_seq_p_value"] = srm_seq.to_numpy(dtype=float)

    records = results.to_dict("records")
    decisions = decide_experiments(records, checks, settings)
    results["decision"] = results["experiment_id"].map(
        decisions.set_index("experiment_id")["decision"]
    )
    results["corrections"] = [corrections(record, settings) for record in records]
    results["analysed_at"] = pd.Timestamp(analysed_at).tz_convert("UTC")
    results = results[list(RESULT_COLUMNS)].copy()
    for column in ("significant", "cuped", "seq_significant"):
        results[column] = results[column].astype(bool)
    return AbAnalysis(
        results=results.reset_index(drop=True),
        decisions=decisions,
        paths=daily_paths(frame, statistics, settings),
    )
