"""The A/B report: forest plot, sequential paths and a Markdown summary with the decisions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.formatting import number as _num
from mixai_ml.ab.formatting import p_value as _p
from mixai_ml.ab.formatting import percent as _pct

FOREST_PLOT = "ab_forest.png"
SEQUENTIAL_PLOT = "ab_sequential.png"
"""File names of the plots, beside the report in ``data/08_reporting``."""

_ROLE_COLOURS = {"primary": "tab:blue", "secondary": "tab:grey", "guardrail": "tab:red"}
_DECISION_TEXT = {
    "ship": "SHIP",
    "keep_running": "KEEP RUNNING",
    "stop": "STOP (guardrail or primary worse)",
    "invalid": "INVALID",
}


def _empty_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 1.5))
    axis = figure.subplots()
    axis.text(0.5, 0.5, message, ha="center", va="center")
    axis.set_axis_off()
    return figure


def forest_plot(results: pd.DataFrame, settings: AbSettings) -> Figure:
    """Relative lift with its 95 % (``1 - alpha``) CI per experiment, metric and variant.

    One panel per experiment; colour = role; filled marker = significant (adjusted p for
    primary/secondary, raw p for guardrails); ``|`` marks a guardrail's non-inferiority margin.
    """
    if results.empty:
        return _empty_figure("no experiments analysed")
    experiments = sorted(results["experiment_id"].unique())
    heights = [
        max(1.5, 0.45 * int((results["experiment_id"] == e).sum()) + 0.9) for e in experiments
    ]
    figure = Figure(figsize=(8, sum(heights)))
    axes = figure.subplots(
        len(experiments), 1, squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for axis, experiment_id in zip(axes[:, 0], experiments, strict=True):
        rows = results[results["experiment_id"] == experiment_id].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for position, (_, row) in zip(y, rows.iterrows(), strict=True):
            colour = _ROLE_COLOURS.get(str(row["role"]), "black")
            effect = 100 * float(row["rel_effect"])
            low, high = 100 * float(row["rel_ci_low"]), 100 * float(row["rel_ci_high"])
            if math.isfinite(effect):
                axis.errorbar(
                    effect,
                    position,
                    xerr=[[effect - low], [high - effect]],
                    fmt="o",
                    color=colour,
                    markerfacecolor=colour if row["significant"] else "white",
                    capsize=3,
                )
            margin = float(row["noninferiority_margin"])
            control = abs(float(row["mean_control"]))
            if math.isfinite(margin) and control > 0:
                spec = settings.metric_spec(str(row["metric"]), row["metric_type"] == "proportion")
                side = -1.0 if spec.higher_is_better else 1.0  # the harmful side
                axis.plot(100 * side * margin / control, position, "|", color="tab:red", ms=14)
        axis.axvline(0.0, color="black", lw=0.8)
        axis.set_yticks(y, [f"{r.metric} · {r.variant}" for r in rows.itertuples()])
        decision = str(rows["decision"].iloc[0])
        axis.set_title(f"{experiment_id}: {_DECISION_TEXT.get(decision, decision)}", loc="left")
        axis.set_xlabel("relative lift vs control (%)")
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def sequential_plot(paths: pd.DataFrame) -> Figure:
    """Daily path of each primary metric: estimate, fixed-horizon CI and confidence sequence."""
    if paths.empty:
        return _empty_figure("no primary-metric data for a sequential path")
    groups = list(paths.groupby(["experiment_id", "metric", "variant"], sort=True))
    figure = Figure(figsize=(8, 3.0 * len(groups)))
    axes = figure.subplots(len(groups), 1, squeeze=False)
    for axis, ((experiment_id, metric, variant), path) in zip(axes[:, 0], groups, strict=True):
        days = pd.to_datetime(path["day"])
        axis.fill_between(
            days,
            path["seq_ci_low"].astype(float),
            path["seq_ci_high"].astype(float),
            color="tab:orange",
            alpha=0.25,
            label="always-valid confidence sequence",
        )
        axis.fill_between(
            days,
            path["abs_ci_low"].astype(float),
            path["abs_ci_high"].astype(float),
            color="tab:blue",
            alpha=0.25,
            label="fixed-horizon CI (valid at one look only)",
        )
        axis.plot(days, path["abs_effect"].astype(float), color="tab:blue", label="estimate")
        axis.axhline(0.0, color="black", lw=0.8)
        axis.set_title(f"{experiment_id}: {metric}, {variant} − control", loc="left")
        axis.set_ylabel("absolute effect")
        axis.legend(loc="upper right", fontsize="small")
        axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _metric_table(rows: pd.DataFrame, level: str) -> list[str]:
    lines = [
        "| metric | role | type | variant | n control / variant | mean control | mean variant "
        f"| abs. effect [{level} CI] | rel. effect [{level} CI] | p | p adj. "
        f"| sequential CI ({level}) | seq. p | non-inferiority (margin, p) | power | MDE "
        "| n / variant needed | CUPED |",
        "|" + "---|" * 18,
    ]
    for row in rows.itertuples():
        cuped = f"yes ({_pct(row.variance_reduction)} var.)" if row.cuped else "no"
        ni = (
            f"{_num(row.noninferiority_margin)}, p={_p(row.noninferiority_p_value)}"
            if math.isfinite(float(row.noninferiority_margin))
            else "–"
        )
        lines.append(
            f"| {row.metric} | {row.role} | {row.metric_type} | {row.variant} "
            f"| {row.n_control} / {row.n_variant} | {_num(row.mean_control)} "
            f"| {_num(row.mean_variant)} | {_num(row.abs_effect)} "
            f"[{_num(row.abs_ci_low)}, {_num(row.abs_ci_high)}] | {_pct(row.rel_effect)} "
            f"[{_pct(row.rel_ci_low)}, {_pct(row.rel_ci_high)}] | {_p(row.p_value)} "
            f"| {_p(row.p_value_adjusted)} | [{_num(row.seq_ci_low)}, {_num(row.seq_ci_high)}] "
            f"| {_p(row.seq_p_value)} | {ni} | {_num(row.power, 2)} | {_num(row.mde)} "
            f"| {_num(row.required_n_per_variant, 6)} | {cuped} |"
        )
    return lines


def markdown_report(
    results: pd.DataFrame, decisions: pd.DataFrame, settings: AbSettings, analysed_at: str
) -> str:
    """The report: settings, one summary line per experiment, plots, then per-experiment detail."""
    level = f"{100 * (1 - settings.alpha):g} %"
    lines = [
        "# A/B test analysis",
        "",
        f"Analysed at {analysed_at}. Two-sided α = {settings.alpha}; multiple testing: "
        f"{settings.correction} over primary + secondary metrics × variants; sample-ratio check "
        f"at p < {settings.srm_alpha}; decisions on the **{settings.decision_basis}** results; "
        f"confidence sequences tuned for {settings.tuning_n_per_variant:g} users per variant; "
        f"CUPED {'on' if settings.cuped else 'off'}. Methods: `docs/ab_testing.md`.",
        "",
        "## Decisions",
        "",
    ]
    if decisions.empty:
        lines += ["No experiments in `ab_test_assignments`.", ""]
        return "\n".join(lines)
    lines += [
        "| experiment | decision | variant to ship | SRM p | assigned users |",
        "|---|---|---|---|---|",
    ]
    for row in decisions.itertuples():
        ship = row.ship_variant if isinstance(row.ship_variant, str) else "–"
        lines.append(
            f"| {row.experiment_id} | **{_DECISION_TEXT.get(row.decision, row.decision)}** "
            f"| {ship} | {_p(row.srm_p_value)} | {row.assigned} |"
        )
    lines += [
        "",
        f"![Relative effects with {level} CIs]({FOREST_PLOT})",
        "",
        f"![Sequential path of the primary metric]({SEQUENTIAL_PLOT})",
        "",
    ]
    for row in decisions.itertuples():
        lines += [
            f"## {row.experiment_id}",
            "",
            f"**Decision: {_DECISION_TEXT.get(row.decision, row.decision)}**"
            + (f" — ship `{row.ship_variant}`" if isinstance(row.ship_variant, str) else ""),
            "",
            *[f"- {reason}" for reason in str(row.reasons).split("; ") if reason],
            "",
            f"Assigned: {row.assigned} (expected weights {row.weights}); "
            f"SRM p = {_p(row.srm_p_value)}.",
            "",
        ]
        rows = results[results["experiment_id"] == row.experiment_id]
        if not rows.empty:
            lines += [*_metric_table(rows, level), ""]
    lines += [
        "## How to read this report",
        "",
        "- *abs. effect* is variant − control in metric units (CUPED-adjusted when CUPED is yes; "
        "the means are raw); *rel. effect* is variant/control − 1 with a delta-method CI.",
        "- *p* is the fixed-horizon two-sided p-value, valid if you look once at a planned size; "
        "*p adj.* corrects it for the number of primary and secondary comparisons.",
        "- The *sequential CI* and *seq. p* stay valid however often you look: they are the "
        "numbers to watch while an experiment runs.",
        "- Guardrails need non-inferiority: worse than control by less than the margin, shown at "
        "α. *power* is the chance to detect the target effect (default 5 % of the control "
        "mean) at the current size; *MDE* the smallest effect detectable with 80 % power now.",
        "",
    ]
    return "\n".join(lines)
