"""Sample-ratio checks (expected splits, the anytime-valid SRM of every experiment at once) and
each experiment's decision from its result rows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mixai_inference.control import json_mapping
from mixai_ml.ab.config import CONTROL, AbSettings
from mixai_ml.ab.formatting import p_value as p_value_text
from mixai_ml.ab.srm import sequential_srm_p_values, srm_p_value
from mixai_ml.ab.store import AbStatistics

logger = logging.getLogger(__name__)


Decision = Literal["ship", "keep_running", "stop", "invalid"]
DECISION_COLUMNS = (
    "experiment_id",
    "decision",
    "ship_variant",
    "reasons",
    "srm_p_value",
    "srm_seq_p_value",
    "assigned",
    "weights",
    "weights_from",
)


# --- sample-ratio checks -------------------------------------------------------------------------


def _expected_weights(
    statistics: AbStatistics, assigned: dict[str, dict[str, int]]
) -> dict[str, tuple[dict[str, float], str]]:
    """Each experiment's expected split and where it came from: ``ab_experiments`` (the one
    definition of an experiment), else an even split over the variants seen."""
    designs: dict[str, dict[str, float]] = {}
    for experiment_id, weights in zip(
        statistics.designs["experiment_id"], statistics.designs["weights"], strict=True
    ):
        try:
            parsed = json_mapping(weights, "weights")
            designs[str(experiment_id)] = {str(k): float(v) for k, v in parsed.items()}
        except (TypeError, ValueError):
            logger.warning(
                "ab_experiments.weights of %s is not a JSON object: ignored", experiment_id
            )
    expected = {}
    for experiment_id, counts in assigned.items():
        if experiment_id in designs and sum(designs[experiment_id].values()) > 0:
            expected[experiment_id] = (designs[experiment_id], "ab_experiments")
        else:
            expected[experiment_id] = (dict.fromkeys(sorted(counts), 1.0), "even split")
    return expected


def _sequential_srm(
    daily: pd.DataFrame,
    expected: Mapping[str, tuple[dict[str, float], str]],
    concentration: float,
) -> dict[str, float]:
    """The anytime-valid SRM p-value of every experiment after its last day, at once.

    One array of cumulative counts (experiments × days × variants) for all experiments; an
    experiment's days before its first assignment count zero users (no evidence either way).
    """
    experiments = sorted(expected)
    names = sorted(set(daily["variant"]) | {v for w, _ in expected.values() for v in w})
    days = sorted(set(daily["day"]))
    if not experiments or not days:
        return dict.fromkeys(experiments, 1.0)
    counts = np.zeros((len(experiments), len(days), len(names)))
    e_index = {e: i for i, e in enumerate(experiments)}
    d_index = {d: i for i, d in enumerate(days)}
    v_index = {v: i for i, v in enumerate(names)}
    np.add.at(
        counts,
        (
            daily["experiment_id"].map(e_index).to_numpy(dtype=int),
            daily["day"].map(d_index).to_numpy(dtype=int),
            daily["variant"].map(v_index).to_numpy(dtype=int),
        ),
        daily["n_assigned"].to_numpy(dtype=float),
    )
    shares = np.array([[float(expected[e][0].get(v, 0.0)) for v in names] for e in experiments])
    p = sequential_srm_p_values(np.cumsum(counts, axis=1), shares, concentration)[:, -1]
    weighted = (shares > 0).sum(axis=1) >= 2
    return {e: float(p[i]) if weighted[i] else 1.0 for e, i in e_index.items()}


# --- decisions -----------------------------------------------------------------------------------


class _Evidence:
    """Reads one result row under the configured decision basis."""

    def __init__(self, row: Mapping[str, Any], settings: AbSettings) -> None:
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
    rows: list[Mapping[str, Any]], srm_p: float, settings: AbSettings
) -> tuple[Decision, str | None, list[str]]:
    basis = (
        "always-valid sequential test"
        if settings.decision_basis == "sequential"
        else "fixed-horizon test"
    )
    if srm_p < settings.srm_alpha:
        check = "sequential" if settings.decision_basis == "sequential" else "chi-square"
        return (
            "invalid",
            None,
            [f"sample-ratio mismatch ({check} SRM p={p_value_text(srm_p)} < {settings.srm_alpha})"],
        )
    if not rows:
        return "keep_running", None, ["no metric data yet"]
    candidates: list[tuple[float, str, list[str]]] = []
    stop_reasons: list[str] = []
    waiting: list[str] = []
    for variant in sorted({str(row["variant"]) for row in rows}):
        evidence = [_Evidence(row, settings) for row in rows if row["variant"] == variant]
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
            candidates.append((score if np.isfinite(score) else 0.0, variant, reasons))
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


# --- every experiment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRatioChecks:
    """Per experiment: users assigned per variant, the expected split (weights, where from), and
    the chi-square and anytime-valid SRM p-values."""

    assigned: dict[str, dict[str, int]]
    expected: dict[str, tuple[dict[str, float], str]]
    p_values: dict[str, tuple[float, float]]


def sample_ratio_checks(statistics: AbStatistics, settings: AbSettings) -> SampleRatioChecks:
    """Both sample-ratio checks of every experiment with assignments."""
    daily_assignments = statistics.assignments
    totals = daily_assignments.groupby(["experiment_id", "variant"], sort=True)["n_assigned"].sum()
    assigned: dict[str, dict[str, int]] = {}
    for (experiment_id, variant), count in totals.items():
        assigned.setdefault(str(experiment_id), {})[str(variant)] = int(count)
    expected = _expected_weights(statistics, assigned)
    sequential_srm = _sequential_srm(daily_assignments, expected, settings.srm_concentration)
    p_values = {e: (srm_p_value(assigned[e], expected[e][0]), sequential_srm[e]) for e in assigned}
    return SampleRatioChecks(assigned, expected, p_values)


def decide_experiments(
    records: list[dict[str, Any]], checks: SampleRatioChecks, settings: AbSettings
) -> pd.DataFrame:
    """One decision row per experiment (:data:`DECISION_COLUMNS`) from its result rows."""
    assigned, expected, srm = checks.assigned, checks.expected, checks.p_values
    rows_of: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        rows_of.setdefault(str(record["experiment_id"]), []).append(record)
    decision_rows = []
    for experiment_id in sorted(assigned):
        counts, (weights, source) = assigned[experiment_id], expected[experiment_id]
        fixed, sequential = srm[experiment_id]
        summary = {
            "experiment_id": experiment_id,
            "srm_p_value": fixed,
            "srm_seq_p_value": sequential,
            "assigned": ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
            "weights": ", ".join(f"{k}={v:g}" for k, v in sorted(weights.items())),
            "weights_from": source,
        }
        if CONTROL not in counts:
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
        decisive_srm = sequential if settings.decision_basis == "sequential" else fixed
        decision, ship, reasons = _decide(rows_of.get(experiment_id, []), decisive_srm, settings)
        decision_rows.append(
            {**summary, "decision": decision, "ship_variant": ship, "reasons": "; ".join(reasons)}
        )
    return pd.DataFrame(decision_rows, columns=list(DECISION_COLUMNS))
