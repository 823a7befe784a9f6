"""Run-time control: which flags are on, which version serves each task, which experiments run.

Layers, most specific first (CONTRACTS §9): an environment variable of a flag (an operator's
emergency override) → the database (``ml_feature_flags``, ``model_registry``,
``ab_experiments``) → the bundle's manifest → the package defaults. Each item is decided by
the first layer that says something about it:

* a **flag** by its environment variable, else its ``ml_feature_flags`` row, else the
  manifest's ``flags``, else :func:`~mixai_inference.flags.default_flags`;
* a **task's active version and rollout** by its ``model_registry`` rows when the task has
  any (no ``active`` row: no model), else by the manifest;
* an **experiment** by its ``ab_experiments`` row when there is one (served only while
  ``running``), else by the manifest. The variants of a row name a role (``active``: the
  task's active version; ``candidate``: its newest candidate; ``rules``) or a version.

:func:`resolve_control` does the merging; it is pure, so the service reads the rows from the
database and everything else is tested without one. The bundle stays the artefact store: a
version the database routes to but the bundle does not ship answers from the rules with
reason ``not_in_bundle``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mixai_inference.bundle import Experiment, Manifest, experiment_problems
from mixai_inference.flags import Flags, resolve_flags
from mixai_inference.tasks import task_names

RULES_ROLE = "rules"
"""A variant (or experiment row) answered by the rules."""


@dataclass(frozen=True)
class TaskControl:
    """What serves one task outside experiments."""

    active_version: str | None
    rollout_pct: float
    candidate_version: str | None = None
    """The newest candidate (the ``candidate`` role of an experiment)."""


@dataclass(frozen=True)
class RegistryRow:
    """The ``model_registry`` columns control needs."""

    task: str
    version: str
    status: str
    rollout_pct: float
    created_at: datetime | str | None = None
    promoted_at: datetime | str | None = None


@dataclass(frozen=True)
class ExperimentRow:
    """An ``ab_experiments`` row; ``variants`` and ``weights`` as JSON text or mappings."""

    experiment_id: str
    task: str
    variants: Mapping[str, Any] | str
    weights: Mapping[str, Any] | str
    coverage: float
    status: str


@dataclass(frozen=True)
class ControlRows:
    """What the database says (any table may be empty)."""

    flags: Mapping[str, bool] = field(default_factory=dict)
    models: Sequence[RegistryRow] = ()
    experiments: Sequence[ExperimentRow] = ()
    ood_policies: Mapping[str, str] = field(default_factory=dict)
    """Task → its ``ml_task_settings.ood_policy`` (applied by the service to the guards)."""


@dataclass(frozen=True)
class Control:
    """The effective control of a predictor (see the module documentation)."""

    flags: Flags
    tasks: Mapping[str, TaskControl]
    experiments: Mapping[str, Experiment]
    """The experiments routing serves, variants resolved to versions (``None``: the rules)."""
    problems: tuple[str, ...] = ()
    """Rows that could not be used (logged; e.g. an experiment with invalid weights)."""

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest | None,
        flags: Flags | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Control:
        """The bundle's own control; ``flags`` replaces its flags and the environment."""
        return resolve_control(manifest, None, environ, flags=flags)


def _newest(rows: Sequence[RegistryRow], status: str, key: str) -> RegistryRow | None:
    chosen = [row for row in rows if row.status == status]
    return max(chosen, key=lambda row: str(getattr(row, key) or "")) if chosen else None


def _task_controls(
    manifest: Manifest | None, models: Sequence[RegistryRow]
) -> dict[str, TaskControl]:
    tasks = {}
    for task in task_names():
        rows = [row for row in models if row.task == task]
        if rows:
            active = _newest(rows, "active", "promoted_at")
            candidate = _newest(rows, "candidate", "created_at")
            tasks[task] = TaskControl(
                active.version if active else None,
                float(active.rollout_pct) if active else 0.0,
                candidate.version if candidate else None,
            )
            continue
        entry = manifest.tasks.get(task) if manifest else None
        if entry is None:
            tasks[task] = TaskControl(None, 0.0)
            continue
        candidates = [m for m in entry.models.values() if m.status == "candidate"]
        newest = max(candidates, key=lambda m: m.created_at or "") if candidates else None
        active_entry = entry.active
        tasks[task] = TaskControl(
            entry.active_version,
            active_entry.rollout_pct if active_entry else 0.0,
            newest.version if newest else None,
        )
    return tasks


def json_mapping(value: Mapping[str, Any] | str, what: str) -> dict[str, Any]:
    """A database row's JSON object (``variants``, ``weights``), parsed if it is text.

    Raises:
        ValueError: If it is not valid JSON or not an object.
    """
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {value!r}")
    return dict(parsed)


def _experiment(row: ExperimentRow, tasks: Mapping[str, TaskControl]) -> Experiment:
    """The served form of a running row.

    Raises:
        ValueError: If the row is not a valid experiment or a role does not resolve.
    """
    if row.task not in tasks:
        raise ValueError(f"unknown task {row.task!r}; expected one of {list(tasks)}")
    roles = json_mapping(row.variants, "variants")
    weights = {name: float(value) for name, value in json_mapping(row.weights, "weights").items()}
    task = tasks[row.task]
    variants: dict[str, str | None] = {}
    for name, role in roles.items():
        if role == RULES_ROLE:
            variants[name] = None
        elif role in ("active", "candidate"):
            version = task.active_version if role == "active" else task.candidate_version
            if version is None:
                raise ValueError(f"variant {name!r}: {row.task} has no {role} version")
            variants[name] = version
        elif isinstance(role, str) and role:
            variants[name] = role
        else:
            raise ValueError(f"variant {name!r}: expected a role or a version, got {role!r}")
    coverage = float(row.coverage)
    experiment = Experiment(row.experiment_id, row.task, variants, weights, coverage)
    problems = experiment_problems(experiment)
    if not math.isfinite(coverage):
        problems.append("coverage is not finite")
    if problems:
        raise ValueError("; ".join(problems))
    return experiment


def resolve_control(
    manifest: Manifest | None,
    rows: ControlRows | None,
    environ: Mapping[str, str] | None = None,
    *,
    flags: Flags | None = None,
) -> Control:
    """Merge the layers: ``environ`` → ``rows`` (the database) → ``manifest`` → defaults.

    Args:
        manifest: The served bundle's manifest (``None``: no bundle).
        rows: What the database says; ``None`` when it was never read.
        environ: Environment variables; ``None`` reads :data:`os.environ`.
        flags: Use these flags as they are (every layer ignored), e.g. a caller's
            explicit ``Predictor.from_bundle(flags=...)``.

    Never raises for bad rows: an unusable experiment row is left out (its id then serves
    nothing) and described in :attr:`Control.problems` (the caller logs them).
    """
    rows = rows or ControlRows()
    if flags is None:
        layered = {**(manifest.flags if manifest else {}), **rows.flags}
        flags = resolve_flags(layered, environ)
    tasks = _task_controls(manifest, rows.models)
    experiments: dict[str, Experiment] = {}
    problems: list[str] = []
    overridden = {row.experiment_id for row in rows.experiments}
    if manifest is not None:
        experiments.update(
            (eid, exp) for eid, exp in manifest.experiments.items() if eid not in overridden
        )
    for row in rows.experiments:
        if row.status != "running":
            continue
        try:
            experiments[row.experiment_id] = _experiment(row, tasks)
        except (ValueError, TypeError) as exc:  # bad JSON is a ValueError too
            problems.append(f"experiment {row.experiment_id}: {exc}")
    return Control(flags, tasks, dict(sorted(experiments.items())), tuple(problems))


__all__ = [
    "Control",
    "ControlRows",
    "ExperimentRow",
    "RegistryRow",
    "TaskControl",
    "resolve_control",
]
