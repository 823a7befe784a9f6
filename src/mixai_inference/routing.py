"""Deterministic A/B assignment (shared with the MIXAI web app) and the predictor's routing.

The algorithm (documented for other languages, with a TypeScript version, in
``docs/deployment.md``; ``assignment_vectors.json`` beside this module holds cases
that any implementation must reproduce exactly):

1. ``salt`` defaults to the experiment id.
2. ``unit(kind) = uint32_be(sha256(utf8(salt + ":" + kind + ":" + user_id))[0:4]) / 2**32``,
   a number in [0, 1). UTF-8 as WHATWG/Node encode it: a lone surrogate becomes
   U+FFFD (bytes ``EF BF BD``).
3. The user is in the experiment iff ``unit("coverage") < coverage``. Raising the
   coverage only adds users: nobody who was in leaves.
4. Variants are taken in ascending order of name (Unicode code points; manifests
   restrict names to ASCII so every language sorts alike). With ``total`` the sum of
   the weights in that order, the user gets the first variant whose running sum
   ``cumulative`` satisfies ``unit("variant") < cumulative / total`` (IEEE doubles,
   summed in that order). Zero-weight variants are never chosen. If rounding leaves
   the draw above the last bucket, the last variant with a positive weight is chosen.
   This draw does not depend on coverage, so a user keeps their variant when the
   coverage rises.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from mixai_inference.control import Control

_UINT32 = 2**32


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: encode them as U+FFFD, like JavaScript
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def hash_unit(salt: str, kind: str, user_id: str) -> float:
    """A uniform number in [0, 1) from the first 4 bytes (big-endian) of a SHA-256 digest.

    The digest is of the UTF-8 bytes of ``f"{salt}:{kind}:{user_id}"``.
    """
    digest = hashlib.sha256(_utf8(f"{salt}:{kind}:{user_id}")).digest()
    return int.from_bytes(digest[:4], "big") / _UINT32


def assign_variant(
    user_id: str,
    experiment_id: str,
    weights: Mapping[str, float],
    coverage: float = 1.0,
    *,
    salt: str | None = None,
) -> str | None:
    """The variant of ``user_id`` in ``experiment_id``, or ``None`` if outside the coverage.

    Args:
        user_id: The user's id (any string; hashed as UTF-8).
        experiment_id: The experiment's id; also the salt unless ``salt`` is given.
        weights: Variant name -> relative weight (non-negative, not all zero),
            e.g. ``{"control": 50, "treatment": 50}``.
        coverage: Share of users in the experiment, in [0, 1].
        salt: Overrides the salt, e.g. to re-randomise an experiment under the same id.

    Raises:
        ValueError: If the weights or the coverage are not valid.
    """
    if not weights:
        raise ValueError("weights is empty: give at least one variant, e.g. {'control': 1.0}")
    values = [float(weights[name]) for name in sorted(weights)]
    if any(not math.isfinite(value) or value < 0 for value in values) or sum(values) <= 0:
        raise ValueError(
            f"weights must be finite, non-negative and not all zero, got {dict(weights)}"
        )
    if not (math.isfinite(coverage) and 0.0 <= coverage <= 1.0):
        raise ValueError(f"coverage must be in [0, 1], got {coverage}")
    key = experiment_id if salt is None else salt
    if hash_unit(key, "coverage", str(user_id)) >= coverage:
        return None
    draw = hash_unit(key, "variant", str(user_id))
    total = 0.0
    for value in values:  # not sum(): Python 3.12+ sums floats with compensation, JS does not
        total += value
    cumulative = 0.0
    names = sorted(weights)
    for name, value in zip(names, values, strict=True):
        cumulative += value
        if draw < cumulative / total:
            return name
    # draw < 1 == cumulative / total unless rounding leaves the last bucket a hair short
    return next(
        name for name, value in zip(reversed(names), reversed(values), strict=True) if value > 0
    )


# --- serving decisions ------------------------------------------------------------------------

ROLLOUT_SALT_PREFIX: Final = "rollout:"
"""The rollout of a task's active version draws ``assign_variant(user_id, "rollout:<task>",
{version: 1}, rollout_pct / 100)``: the same users stay in as the percentage rises."""


class ExperimentRoute(NamedTuple):
    """One of a task's experiments, as routing needs it."""

    experiment_id: str
    variants: Mapping[str, str | None]
    """Variant → model version, or ``None`` for the rules."""
    weights: Mapping[str, float]
    coverage: float
    salt: str | None


@dataclass(frozen=True)
class TaskPlan:
    """What a task can serve, decided once when the bundle is read."""

    task: str
    reason: str | None
    """The whole task answers from the rules for this reason (e.g. ``disabled``)."""
    active: str | None
    rollout: float
    """The active version's ``rollout_pct`` / 100."""
    experiments: tuple[ExperimentRoute, ...]
    """The task's experiments, ids in ascending order."""
    static_failures: Mapping[str, str]
    """Version → reason found when the bundle was read (e.g. ``sha256_mismatch``)."""

    def versions(self) -> set[str]:
        """The versions this plan routes to (active and experiments), usable or not."""
        if self.reason is not None:
            return set()
        routed = {self.active, *(v for e in self.experiments for v in e.variants.values())}
        return {version for version in routed if version is not None}


def plan_task(
    task: str, control: Control, reason: str | None, shipped: Mapping[str, str | None]
) -> TaskPlan:
    """What ``task`` serves under ``control``.

    Args:
        task: The task.
        control: The run-time control in force.
        reason: Why the whole task answers from the rules (e.g. ``disabled``), if it does.
        shipped: The bundle's versions of the task → why each is unusable, or ``None``.
            A routed version the bundle does not ship answers ``not_in_bundle``.
    """
    if reason is not None:
        return TaskPlan(task, reason, None, 0.0, (), {})
    served = control.tasks.get(task)
    experiments = tuple(
        ExperimentRoute(eid, exp.variants, exp.weights, exp.coverage, exp.salt)
        for eid, exp in sorted(control.experiments.items())
        if exp.task == task
    )
    plan = TaskPlan(
        task=task,
        reason=None,
        active=served.active_version if served else None,
        rollout=0.0 if served is None else served.rollout_pct / 100.0,
        experiments=experiments,
        static_failures={},
    )
    failures = {
        version: shipped.get(version, "not_in_bundle") for version in sorted(plan.versions())
    }
    return dataclasses.replace(
        plan, static_failures={v: f for v, f in failures.items() if f is not None}
    )


class Decision(NamedTuple):
    """Where one user's request for a task goes; a ``reason`` means the rules answer."""

    version: str | None
    variant: str | None
    experiment_id: str | None
    reason: str | None


def decide(plan: TaskPlan, user_id: str | None) -> Decision:
    """Route ``user_id`` (or an anonymous call) for ``plan``'s task.

    A user inside one of the task's experiments (first match in id order) gets the
    version of their variant; otherwise the active version if they are inside its
    rollout. Calls without a user get the active version unless its rollout is 0.
    """
    if plan.reason is not None:
        return Decision(None, None, None, plan.reason)
    version, variant, experiment_id = plan.active, None, None
    if user_id is not None:
        for experiment in plan.experiments:
            variant = assign_variant(
                user_id,
                experiment.experiment_id,
                experiment.weights,
                experiment.coverage,
                salt=experiment.salt,
            )
            if variant is not None:
                version, experiment_id = experiment.variants[variant], experiment.experiment_id
                break
    reason = None
    if variant is not None:
        reason = "variant_rules" if version is None else None
    elif version is None:
        reason = "no_model"
    elif user_id is None:
        reason = None if plan.rollout > 0.0 else "rollout"
    else:
        salt = ROLLOUT_SALT_PREFIX + plan.task
        in_rollout = assign_variant(user_id, salt, {version: 1.0}, plan.rollout) is not None
        version, reason = (version, None) if in_rollout else (None, "rollout")
    if reason is None and version is not None:
        reason = plan.static_failures.get(version)
    return Decision(version, variant, experiment_id, reason)
