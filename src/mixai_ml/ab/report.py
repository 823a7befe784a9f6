"""The A/B report: readable with two experiments or a thousand.

* **At a glance**: how many experiments ship, stop, are invalid or keep running.
* **Needs a look**: one line per experiment with a decision to act on (invalid, stop, ship) or a
  sample-ratio warning, most urgent first; the first ``report.max_detailed`` of them also in
  full: reasons, metric table, what was corrected and why, and one small figure (effects and the
  primary metric's daily path).
* **Keep running**: one line per other experiment (the CSVs hold every number).

Figures are drawn one at a time when the catalog saves them (a partitioned dataset of callables),
so memory stays flat however many experiments there are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.formatting import number as _num
from mixai_ml.ab.formatting import p_value as _p
from mixai_ml.ab.formatting import percent as _pct
from mixai_ml.ab.multiplicity import CORRECTION_NAMES

OVERVIEW_PLOT = "ab_overview.png"
EXPERIMENT_PLOTS = "ab_experiments"
"""The overview figure and the folder of per-experiment figures, beside the report."""

_ROLE_COLOURS = {"primary": "tab:blue", "secondary": "tab:grey", "guardrail": "tab:red"}
_DECISION_TEXT = {
    "ship": "SHIP",
    "keep_running": "KEEP RUNNING",
    "stop": "STOP (guardrail or primary worse)",
    "invalid": "INVALID",
}
_URGENCY = {"invalid": 0, "stop": 1, "ship": 2, "keep_running": 3}
SRM_WARNING = 0.01
"""An experiment whose sequential SRM p-value is below this is shown even while it runs."""


def plot_name(experiment_id: str) -> str:
    """The file name (without suffix) of an experiment's figure: safe on every file system."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", experiment_id)


def needs_a_look(decisions: pd.DataFrame) -> list[str]:
    """Experiments with a decision to act on, most urgent first: invalid, stop, ship, then those
    whose sequential SRM check warns."""
    if decisions.empty:
        return []
    ranked = decisions.assign(
        urgency=decisions["decision"].map(_URGENCY).fillna(3),
        warned=decisions["srm_seq_p_value"].astype(float) < SRM_WARNING,
    )
    chosen = ranked[(ranked["urgency"] < 3) | ranked["warned"]]
    chosen = chosen.sort_values(["urgency", "srm_seq_p_value", "experiment_id"], kind="stable")
    return [str(e) for e in chosen["experiment_id"]]


def _empty_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 1.5))
    axis = figure.subplots()
    axis.text(0.5, 0.5, message, ha="center", va="center")
    axis.set_axis_off()
    return figure


def _forest(axis: Axes, rows: pd.DataFrame, labels: list[str]) -> None:
    """Relative effect ± CI per row; colour = role, filled = significant, ``|`` = margin."""
    y = np.arange(len(rows))[::-1]
    for position, row in zip(y, rows.itertuples(), strict=True):
        colour = _ROLE_COLOURS.get(str(row.role), "black")
        effect = 100 * float(row.rel_effect)
        low, high = 100 * float(row.rel_ci_low), 100 * float(row.rel_ci_high)
        if math.isfinite(effect):
            axis.errorbar(
                effect,
                position,
                xerr=[[max(effect - low, 0.0)], [max(high - effect, 0.0)]],
                fmt="o",
                color=colour,
                markerfacecolor=colour if row.significant else "white",
                capsize=3,
            )
        margin, control = float(row.noninferiority_margin), abs(float(row.mean_control))
        if math.isfinite(margin) and control > 0:
            side = -1.0 if row.higher_is_better else 1.0  # the harmful side
            axis.plot(100 * side * margin / control, position, "|", color="tab:red", ms=14)
    axis.axvline(0.0, color="black", lw=0.8)
    axis.set_yticks(y, labels)
    axis.set_xlabel("relative effect vs control (%)")
    axis.grid(axis="x", alpha=0.3)


def _with_direction(rows: pd.DataFrame, settings: AbSettings) -> pd.DataFrame:
    return rows.assign(
        higher_is_better=[
            settings.metric_spec(str(m), t == "proportion").higher_is_better
            for m, t in zip(rows["metric"], rows["metric_type"], strict=True)
        ]
    )


def overview_plot(results: pd.DataFrame, experiments: list[str], settings: AbSettings) -> Figure:
    """The primary metrics of the experiments that need a look, one row per variant."""
    rows = results[(results["role"] == "primary") & results["experiment_id"].isin(experiments)]
    if rows.empty:
        return _empty_figure("no experiment needs a look")
    rows = _with_direction(rows, settings)
    order = {e: i for i, e in enumerate(experiments)}
    rows = rows.sort_values(by="experiment_id", key=lambda s: s.map(order), kind="stable")
    figure = Figure(figsize=(8, 1.0 + 0.35 * len(rows)))
    axis = figure.subplots()
    _forest(
        axis,
        rows,
        [f"{r.experiment_id}: {r.metric} · {r.variant}" for r in rows.itertuples()],
    )
    _relative_limits(axis, rows)
    axis.set_title("primary metrics of the experiments that need a look", loc="left")
    figure.tight_layout()
    return figure


def _relative_limits(axis: Axes, rows: pd.DataFrame) -> None:
    """At most ±100 %: a CI wider than that (a near-zero control rate) would squash the others."""
    bounds = 100 * np.concatenate([rows["rel_ci_low"], rows["rel_ci_high"]]).astype(float)
    bounds = bounds[np.isfinite(bounds)]
    if bounds.size:
        low, high = max(float(bounds.min()), -100.0), min(float(bounds.max()), 100.0)
        pad = 0.1 * max(high - low, 1.0)
        axis.set_xlim(min(low, 0.0) - pad, max(high, 0.0) + pad)


def experiment_figure(rows: pd.DataFrame, path: pd.DataFrame, settings: AbSettings) -> Figure:
    """One experiment: every metric's relative effect, and its primary metric's daily path.

    Fixed margins rather than a layout pass, and plain day ticks: a figure draws in a third of
    a second, which matters when a run draws a few dozen.
    """
    rows = _with_direction(rows, settings)
    panels = 2 if not path.empty else 1
    width, height = 5.0 + 5.0 * panels, 1.4 + 0.4 * max(len(rows), 4)
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(  # margins in inches: 2.8 for the metric labels, 0.6 below
        left=2.8 / width,
        right=1 - 0.2 / width,
        bottom=0.6 / height,
        top=1 - 0.45 / height,
        wspace=0.35,
    )
    axes = figure.subplots(1, panels, squeeze=False)[0]
    _forest(axes[0], rows, [f"{r.metric} ({r.statistic}) · {r.variant}" for r in rows.itertuples()])
    _relative_limits(axes[0], rows)
    decision = str(rows["decision"].iloc[0]) if len(rows) else ""
    axes[0].set_title(
        f"{rows['experiment_id'].iloc[0]}: {_DECISION_TEXT.get(decision, decision)}", loc="left"
    )
    if panels == 2:
        axis = axes[1]
        days = sorted(set(path["day"]))
        position = {day: i for i, day in enumerate(days)}
        for (metric, variant), line in path.groupby(["metric", "variant"], sort=True):
            x = line["day"].map(position).to_numpy()
            axis.fill_between(
                x,
                line["seq_ci_low"].astype(float),
                line["seq_ci_high"].astype(float),
                alpha=0.25,
                label=f"{metric} · {variant}: always-valid interval",
            )
            axis.plot(x, line["abs_effect"].astype(float), label=f"{metric} · {variant}")
        ticks = list(range(0, len(days), max(1, len(days) // 5)))
        axis.set_xticks(ticks, [days[i][5:] for i in ticks])
        axis.axhline(0.0, color="black", lw=0.8)
        axis.set_title("primary metric, day by day (safe to watch daily)", loc="left")
        axis.set_ylabel("absolute effect")
        axis.set_xlabel("day (MM-DD)")
        axis.legend(loc="upper right", fontsize="small")
        axis.grid(alpha=0.3)
    return figure


def experiment_figures(
    results: pd.DataFrame, paths: pd.DataFrame, experiments: list[str], settings: AbSettings
) -> dict[str, Callable[[], Figure]]:
    """One callable per experiment to show: the catalog draws and saves them one at a time."""
    by_experiment = dict(iter(results.groupby("experiment_id", sort=False)))
    path_of = dict(iter(paths.groupby("experiment_id", sort=False))) if len(paths) else {}
    empty_path = paths.iloc[:0]

    def draw(experiment_id: str) -> Callable[[], Figure]:
        return lambda: experiment_figure(
            by_experiment[experiment_id], path_of.get(experiment_id, empty_path), settings
        )

    return {plot_name(e): draw(e) for e in experiments if e in by_experiment}


def _metric_table(rows: pd.DataFrame, level: str) -> list[str]:
    lines = [
        "| metric | role | statistic | variant | n control / variant | control | variant "
        f"| abs. effect [{level} CI] | rel. effect [{level} CI] | p | p adj. "
        f"| sequential CI ({level}) | seq. p | non-inferiority (margin, p) | power | MDE |",
        "|" + "---|" * 16,
    ]
    for row in rows.itertuples():
        ni = (
            f"{_num(row.noninferiority_margin)}, p={_p(row.noninferiority_p_value)}"
            if math.isfinite(float(row.noninferiority_margin))
            else "–"
        )
        lines.append(
            f"| {row.metric} | {row.role} | {row.statistic} | {row.variant} "
            f"| {row.n_control} / {row.n_variant} | {_num(row.mean_control)} "
            f"| {_num(row.mean_variant)} | {_num(row.abs_effect)} "
            f"[{_num(row.abs_ci_low)}, {_num(row.abs_ci_high)}] | {_pct(row.rel_effect)} "
            f"[{_pct(row.rel_ci_low)}, {_pct(row.rel_ci_high)}] | {_p(row.p_value)} "
            f"| {_p(row.p_value_adjusted)} | [{_num(row.seq_ci_low)}, {_num(row.seq_ci_high)}] "
            f"| {_p(row.seq_p_value)} | {ni} | {_num(row.power, 2)} | {_num(row.mde)} |"
        )
    return lines


def _experiments(count: int) -> str:
    return f"{count} experiment" + ("" if count == 1 else "s")


def _primary_summary(results: pd.DataFrame) -> dict[str, str]:
    """Per experiment, its first primary comparison as ``metric +x % [a, b]``."""
    primary = results[results["role"] == "primary"].drop_duplicates("experiment_id")
    return {
        str(r.experiment_id): f"{r.metric} {_pct(r.rel_effect)} [{_pct(r.rel_ci_low)}, "
        f"{_pct(r.rel_ci_high)}]"
        for r in primary.itertuples()
    }


def markdown_report(
    results: pd.DataFrame,
    decisions: pd.DataFrame,
    settings: AbSettings,
    analysed_at: str,
    urgent: list[str],
) -> str:
    """The report (see the module docstring).

    Args:
        urgent: :func:`needs_a_look`; the first ``settings.max_detailed`` are shown in full.
    """
    detailed = urgent[: settings.max_detailed]
    level = f"{100 * (1 - settings.alpha):g} %"
    lines = [
        "# A/B test analysis",
        "",
        f"Analysed at {analysed_at}. Two-sided α = {settings.alpha}; within each experiment the "
        f"primary and secondary comparisons are corrected together with "
        f"{CORRECTION_NAMES[settings.correction]}; decisions on the **{settings.decision_basis}** "
        f"results; sample-ratio check at p < {settings.srm_alpha} "
        f"({'sequential' if settings.decision_basis == 'sequential' else 'chi-square'} test "
        f"decides, both shown); CUPED {'on' if settings.cuped else 'off'}. "
        "Methods: `docs/ab_testing.md`.",
        "",
    ]
    if decisions.empty:
        lines += ["No experiments in `ab_test_assignments`.", ""]
        return "\n".join(lines)
    counts = decisions["decision"].value_counts()
    lines += [
        "## At a glance",
        "",
        ", ".join(
            f"**{int(counts.get(d, 0))}** {_DECISION_TEXT[d].split(' (')[0].lower()}"
            for d in ("ship", "stop", "invalid", "keep_running")
        )
        + f" — {_experiments(len(decisions))}.",
        "",
    ]
    primary = _primary_summary(results)
    by_id = decisions.set_index("experiment_id")
    if urgent:
        shown = (
            f" The first {len(detailed)} are shown in full below."
            if len(urgent) > len(detailed)
            else ""
        )
        lines += [
            "## Needs a look",
            "",
            f"{_experiments(len(urgent))} with a decision to act on or a sample-ratio warning, "
            f"most urgent first.{shown}",
            "",
            "| experiment | decision | variant to ship | primary (relative, "
            f"{level} CI) | SRM p fixed / sequential | assigned users |",
            "|---|---|---|---|---|---|",
        ]
        for experiment_id in urgent:
            row = by_id.loc[experiment_id]
            ship = row["ship_variant"] if isinstance(row["ship_variant"], str) else "–"
            name = (
                f"[{experiment_id}](#{plot_name(experiment_id).lower()})"
                if experiment_id in detailed
                else experiment_id
            )
            lines.append(
                f"| {name} | **{_DECISION_TEXT.get(row['decision'], row['decision'])}** | {ship} "
                f"| {primary.get(experiment_id, '–')} | {_p(row['srm_p_value'])} / "
                f"{_p(row['srm_seq_p_value'])} | {row['assigned']} |"
            )
        lines += ["", f"![Primary metrics of the experiments shown in full]({OVERVIEW_PLOT})", ""]
    others = decisions[~decisions["experiment_id"].isin(urgent)]
    if len(others):
        lines += [
            "## Keep running",
            "",
            f"{_experiments(len(others))} without a decision to act on yet.",
            "",
            f"| experiment | primary (relative, {level} CI) | SRM p sequential | assigned users |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {row.experiment_id} | {primary.get(str(row.experiment_id), '–')} "
            f"| {_p(row.srm_seq_p_value)} | {row.assigned} |"
            for row in others.itertuples()
        ]
        lines.append("")
    for experiment_id in detailed:
        row = by_id.loc[experiment_id]
        rows = results[results["experiment_id"] == experiment_id]
        lines += [
            f"## {experiment_id}",
            "",
            f"**Decision: {_DECISION_TEXT.get(row['decision'], row['decision'])}**"
            + (f" — ship `{row['ship_variant']}`" if isinstance(row["ship_variant"], str) else ""),
            "",
            *[f"- {reason}" for reason in str(row["reasons"]).split("; ") if reason],
            "",
            f"Assigned: {row['assigned']} (expected weights {row['weights']}, from "
            f"{row['weights_from']}). Sample-ratio check: chi-square p = "
            f"{_p(row['srm_p_value'])} (one look), sequential p = {_p(row['srm_seq_p_value'])} "
            "(safe to check daily).",
            "",
        ]
        if not rows.empty:
            lines += [
                *_metric_table(rows, level),
                "",
                "What was corrected, row by row:",
                "",
                *[f"- *{r.metric} · {r.variant}*: {r.corrections}" for r in rows.itertuples()],
                "",
                f"![{experiment_id}]({EXPERIMENT_PLOTS}/{plot_name(experiment_id)}.png)",
                "",
            ]
    lines += [
        "## How to read this report",
        "",
        "- *abs. effect* is variant − control in metric units (CUPED-adjusted where used); "
        "*rel. effect* is variant/control − 1. *statistic* says what is compared: a mean per "
        "user, a proportion of users, a ratio over all rows (e.g. per job) or a percentile of "
        "all rows (p95: 95 % of the rows are at most this).",
        "- *p* is the fixed-horizon p-value, valid if you look once at a planned size; *p adj.* "
        "corrects it for the number of primary and secondary comparisons of the experiment.",
        "- The *sequential CI* and *seq. p* stay valid however often you look: they are the "
        "numbers to watch while an experiment runs, and the ones decisions use by default.",
        "- Guardrails need non-inferiority: worse than control by less than the margin. *power* "
        "is the chance to detect the target effect at the current size; *MDE* the smallest "
        "effect detectable with 80 % power now.",
        "- The sample-ratio check compares the users per variant with the planned split; a "
        "mismatch means the assignment or logging is broken and no effect can be trusted.",
        "",
    ]
    return "\n".join(lines)
