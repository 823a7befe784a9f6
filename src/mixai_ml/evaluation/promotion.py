"""The promotion decision: a candidate replaces the active model only when clearly better."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mixai_inference.tasks import TaskSpec, task_spec


@dataclass(frozen=True)
class PromotionPolicy:
    """Margins on the task's primary metric (in the metric's own units), from
    ``evaluation.promotion.<task>`` in ``parameters_evaluation.yml``.

    Attributes:
        min_gain_vs_rules: the candidate must beat the rules by at least this much.
        min_gain_vs_active: ... and the active model by at least this much.
        max_ece: for a probability task, the largest acceptable calibration error
            (``None``: not checked).
    """

    min_gain_vs_rules: float
    min_gain_vs_active: float
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


def gain(spec: TaskSpec, candidate: float, baseline: float) -> float:
    """How much better ``candidate`` is than ``baseline`` on the primary metric (> 0: better)."""
    return candidate - baseline if spec.higher_is_better else baseline - candidate


def _margin(achieved: float, required: float) -> tuple[bool, str]:
    """Whether the gain ``achieved`` reaches ``required``, and the sentence that says so."""
    ok = achieved >= required
    return ok, f"gain {achieved:+.4f} {'≥' if ok else '<'} required {required:+.4f}"


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
    spec = task_spec(task)
    metric = spec.primary_metric
    undefined = [name for name in ("model", "rules") if metrics[name].get(metric) is None]
    if undefined:
        reason = (
            f"{metric} is undefined on this test set for {', '.join(undefined)} (too few users)"
        )
        return Decision(task, candidate_version, False, [reason], active_version)
    candidate = float(metrics["model"][metric])
    reasons = []
    promote = True
    rules = float(metrics["rules"][metric])
    ok, margin = _margin(gain(spec, candidate, rules), policy.min_gain_vs_rules)
    promote &= ok
    reasons.append(f"{metric} {candidate:.4f} vs rules {rules:.4f}: {margin}")
    if metrics.get("active", {}).get(metric) is not None:
        active = float(metrics["active"][metric])
        ok, margin = _margin(gain(spec, candidate, active), policy.min_gain_vs_active)
        promote &= ok
        reasons.append(f"{metric} vs active {active_version}: {active:.4f}, {margin}")
    else:
        reasons.append("no active model to compare with: the rules are the bar")
    if policy.max_ece is not None and "ece" in metrics["model"]:
        ece = float(metrics["model"]["ece"])
        ok = ece <= policy.max_ece
        promote &= ok
        reasons.append(f"ECE {ece:.4f} {'≤' if ok else '>'} allowed {policy.max_ece:.4f}")
    return Decision(task, candidate_version, promote, reasons, active_version)
