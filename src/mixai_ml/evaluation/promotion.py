"""The promotion decision: a candidate replaces the active model only when clearly better."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mixai_ml.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC


@dataclass(frozen=True)
class PromotionPolicy:
    """Margins on the task's primary metric (in the metric's own units).

    Attributes:
        min_gain_vs_rules: the candidate must beat the rules by at least this much.
        min_gain_vs_active: ... and the active model by at least this much.
        max_ece: for ``align_conf``, the largest acceptable calibration error.
    """

    min_gain_vs_rules: float = 0.0
    min_gain_vs_active: float = 0.0
    max_ece: float | None = None


@dataclass(frozen=True)
class Decision:
    """Whether a task's candidate is promoted, and why."""

    task: str
    candidate_version: str
    promote: bool
    reasons: list[str] = field(default_factory=list)
    active_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gain(metric: str, candidate: float, baseline: float) -> float:
    """How much better ``candidate`` is than ``baseline`` (positive = better)."""
    return candidate - baseline if HIGHER_IS_BETTER[metric] else baseline - candidate


def decide(
    task: str,
    candidate_version: str,
    metrics: Mapping[str, Mapping[str, Any]],
    policy: PromotionPolicy,
    active_version: str | None = None,
) -> Decision:
    """Apply ``policy`` to the evaluation of one task.

    Args:
        task: the task name.
        candidate_version: the new model's version ("" when training was skipped).
        metrics: the task's evaluation blocks: ``model``, ``rules`` and, when an
            active model was evaluated on the same test set, ``active``.
        policy: the margins.
        active_version: the version currently active, if any.
    """
    if not candidate_version or "model" not in metrics:
        return Decision(
            task, candidate_version, False, ["no candidate: training was skipped"], active_version
        )
    metric = PRIMARY_METRIC[task]
    undefined = [name for name in ("model", "rules") if metrics[name].get(metric) is None]
    if undefined:
        reason = (
            f"{metric} is undefined on this test set for {', '.join(undefined)} (too few users)"
        )
        return Decision(task, candidate_version, False, [reason], active_version)
    candidate = float(metrics["model"][metric])
    reasons = []
    promote = True
    versus_rules = gain(metric, candidate, float(metrics["rules"][metric]))
    ok = versus_rules >= policy.min_gain_vs_rules
    promote &= ok
    reasons.append(
        f"{metric} {candidate:.4f} vs rules {metrics['rules'][metric]:.4f}: "
        f"gain {versus_rules:+.4f} {'≥' if ok else '<'} required {policy.min_gain_vs_rules:+.4f}"
    )
    if metrics.get("active", {}).get(metric) is not None:
        versus_active = gain(metric, candidate, float(metrics["active"][metric]))
        ok = versus_active >= policy.min_gain_vs_active
        promote &= ok
        reasons.append(
            f"{metric} vs active {active_version}: {metrics['active'][metric]:.4f}, gain "
            f"{versus_active:+.4f} {'≥' if ok else '<'} required {policy.min_gain_vs_active:+.4f}"
        )
    else:
        reasons.append("no active model to compare with: the rules are the bar")
    if policy.max_ece is not None and "ece" in metrics["model"]:
        ece = float(metrics["model"]["ece"])
        ok = ece <= policy.max_ece
        promote &= ok
        reasons.append(f"ECE {ece:.4f} {'≤' if ok else '>'} allowed {policy.max_ece:.4f}")
    return Decision(task, candidate_version, promote, reasons, active_version)
