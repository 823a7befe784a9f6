"""What an operator can change from the console; every change writes its audit row.

Flags, task settings and experiments change in one transaction with their audit row. Registry
changes go through :func:`mixai_ml.export.changes.apply_change`, the code of ``mixai-registry``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from kedro.framework.context import KedroContext
from sqlalchemy import Connection, Engine, Row, Table, insert, select, update

from mixai_inference.ood import POLICIES
from mixai_inference.tasks import flag_names, task_names
from mixai_ml.admin import audit
from mixai_ml.db import schema
from mixai_ml.export.changes import Command, apply_change

_flags = schema.ml_feature_flags
_task_settings = schema.ml_task_settings
_experiments = schema.ab_experiments
ROLES = ("active", "candidate", "rules")
"""What a variant can serve besides an explicit model version."""
CONTROL = "control"
_EXPERIMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VARIANT = re.compile(r"[a-z][a-z0-9_]{0,31}")


class Refused(ValueError):
    """A change the console will not make; the message tells the operator why."""


class Malformed(Refused):
    """A request the console's own forms never send (a value outside their choices): 400."""


def _put(
    connection: Connection, table: Table, key: str, value: str, values: Mapping[str, Any]
) -> Row[Any] | None:
    """Insert or update the row of ``table`` whose primary key ``key`` is ``value`` (the same
    SQL on SQLite and PostgreSQL; changes hold the console's change lock); the row as it was,
    or ``None``."""
    where = table.c[key] == value
    old = connection.execute(select(table).where(where)).first()
    if old is None:
        connection.execute(insert(table).values({key: value, **values}))
    else:
        connection.execute(update(table).where(where).values(**values))
    return old


def set_flag(engine: Engine, flag: str, enabled: bool, actor: str, now: datetime) -> None:
    """Switch a flag in ``ml_feature_flags`` (the inference service reads it)."""
    if flag not in flag_names():
        raise Refused(f"unknown flag {flag!r}; one of {', '.join(flag_names())}")
    with engine.begin() as connection:
        values = {"enabled": enabled, "updated_at": now, "updated_by": actor}
        old = _put(connection, _flags, "flag", flag, values)
        audit.record(
            connection,
            actor=actor,
            action="flag.set",
            target=flag,
            before=None if old is None else {"enabled": bool(old.enabled)},
            after={"enabled": enabled},
            at=now,
        )


BUNDLE_POLICY = "default"
"""The form's value for "no policy of the console's": the task serves its bundle's policy."""


def set_ood_policy(
    engine: Engine,
    task: str,
    policy: str,
    bundle_policies: Mapping[str, str],
    actor: str,
    now: datetime,
) -> str:
    """Set ``task``'s out-of-distribution policy in ``ml_task_settings`` (the inference
    service reads it), or with :data:`BUNDLE_POLICY` clear it (NULL: the bundle's serves);
    a summary for the operator.

    Args:
        bundle_policies: Task → its policy without the console's (for the summary).

    Raises:
        Malformed: For a task that is not registered or a policy not of
            :data:`~mixai_inference.ood.POLICIES`; nothing is changed.
    """
    if task not in task_names():
        raise Malformed(f"unknown task {task!r}; one of {', '.join(task_names())}")
    if policy not in (*POLICIES, BUNDLE_POLICY):
        raise Malformed(
            f"unknown out-of-distribution policy {policy!r}; one of "
            f"{', '.join(POLICIES)} or {BUNDLE_POLICY} (the bundle's)"
        )
    stored = None if policy == BUNDLE_POLICY else policy
    bundle_policy = bundle_policies[task]
    with engine.begin() as connection:
        values = {"ood_policy": stored, "updated_at": now, "updated_by": actor}
        old = _put(connection, _task_settings, "task", task, values)
        before = None if old is None else old.ood_policy
        audit.record(
            connection,
            actor=actor,
            action="ood_policy.set",
            target=task,
            before={"ood_policy": before},
            after={"ood_policy": stored},
            at=now,
        )
    return (
        f"out-of-distribution policy of {task}: {_policy_words(before, bundle_policy)} → "
        f"{_policy_words(stored, bundle_policy)}; the service applies it within "
        "MIXAI_CONTROL_REFRESH_S"
    )


def _policy_words(stored: str | None, bundle_policy: str) -> str:
    return stored or f"bundle default ({bundle_policy})"


def _states(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {
        str(row.version): {"status": str(row.status), "rollout_pct": float(row.rollout_pct)}
        for row in rows.itertuples()
    }


def change_registry(
    context: KedroContext,
    engine: Engine,
    command: Command,
    task: str,
    actor: str,
    now: datetime,
    *,
    version: str | None = None,
    rollout_pct: float | None = None,
) -> str:
    """Promote, set the rollout or roll back (as ``mixai-registry``); a summary for the operator.

    The audit row holds the versions whose status or rollout changed, before and after.
    """
    if task not in task_names():
        raise Refused(f"unknown task {task!r}; one of {', '.join(task_names())}")
    try:
        change = apply_change(context, command, task, now, version=version, rollout_pct=rollout_pct)
    except (ValueError, LookupError, FileNotFoundError) as error:
        raise Refused(str(error)) from None
    before, after = _states(change.before), _states(change.after)
    changed = sorted(v for v in after if before.get(v) != after[v])
    with engine.begin() as connection:
        audit.record(
            connection,
            actor=actor,
            action=f"model.{command}",
            target=task,
            before={v: before.get(v) for v in changed},
            after={v: after[v] for v in changed},
            at=now,
        )
    active = change.manifest.tasks[task].active
    state = f"{active.version} at {active.rollout_pct:g} %" if active else "none (rules)"
    return f"{task}: active {state}; bundle rebuilt"


# --- experiments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment definition, as ``ab_experiments`` stores it."""

    experiment_id: str
    task: str
    variants: Mapping[str, str]
    weights: Mapping[str, float]
    coverage: float


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise Refused(f"{what} must be finite, got {text!r}")
    return value


def parse_percent(text: str) -> float:
    percent = _number(text, "the rollout")
    if not 0.0 <= percent <= 100.0:
        raise Refused(f"the rollout is a percentage of users between 0 and 100, got {percent:g}")
    return percent


def parse_coverage(text: str) -> float:
    coverage = _number(text, "coverage")
    if not 0.0 <= coverage <= 1.0:
        raise Refused(f"coverage is a share of users between 0 and 1, got {coverage:g}")
    return coverage


def parse_weights(pairs: Mapping[str, str]) -> dict[str, float]:
    weights = {name: _number(text, f"the weight of {name}") for name, text in pairs.items()}
    if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
        raise Refused("weights must be non-negative and not all zero")
    return weights


def parse_experiment(
    experiment_id: str,
    task: str,
    rows: list[tuple[str, str, str]],
    coverage: str,
    registered_versions: set[str],
) -> ExperimentSpec:
    """Validate a new experiment from the form: ``rows`` are (variant, serves, weight); rows with
    an empty name are ignored. ``serves`` is a role of :data:`ROLES` or a registered version."""
    experiment_id = experiment_id.strip()
    if not _EXPERIMENT_ID.fullmatch(experiment_id):
        raise Refused(
            "experiment id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if task not in task_names():
        raise Refused(f"unknown task {task!r}; one of {', '.join(task_names())}")
    variants, weights = {}, {}
    for name, serves, weight in rows:
        name, serves = name.strip(), serves.strip()
        if not name:
            continue
        if not _VARIANT.fullmatch(name) or name in variants:
            raise Refused(f"variant {name!r}: a new name of lower-case letters, digits and '_'")
        if serves not in ROLES and serves not in registered_versions:
            raise Refused(
                f"variant {name!r} serves {serves!r}: use {', '.join(ROLES)} or a version "
                f"registered for {task}"
            )
        variants[name], weights[name] = serves, weight
    if CONTROL not in variants or len(variants) < 2:
        raise Refused("an experiment needs a variant named control and at least one other")
    return ExperimentSpec(
        experiment_id, task, variants, parse_weights(weights), parse_coverage(coverage)
    )


def _experiment(connection: Connection, experiment_id: str) -> dict[str, Any] | None:
    row = connection.execute(
        select(_experiments).where(_experiments.c.experiment_id == experiment_id)
    ).first()
    if row is None:
        return None
    state = dict(row._mapping)
    state["variants"], state["weights"] = (
        json.loads(state["variants"]),
        json.loads(state["weights"]),
    )
    return state


def create_experiment(engine: Engine, spec: ExperimentSpec, actor: str, now: datetime) -> None:
    """Add an experiment as ``draft`` (it routes nobody until started)."""
    row = {
        "experiment_id": spec.experiment_id,
        "task": spec.task,
        "variants": json.dumps(dict(spec.variants), sort_keys=True),
        "weights": json.dumps(dict(spec.weights), sort_keys=True),
        "coverage": spec.coverage,
        "status": "draft",
    }
    with engine.begin() as connection:
        if _experiment(connection, spec.experiment_id) is not None:
            raise Refused(f"experiment {spec.experiment_id!r} exists already: choose a new id")
        connection.execute(insert(_experiments).values(**row))
        audit.record(
            connection,
            actor=actor,
            action="experiment.create",
            target=spec.experiment_id,
            before=None,
            after=_experiment(connection, spec.experiment_id),
            at=now,
        )


_TRANSITIONS = {
    "start": ("draft", "running", "started_at"),
    "stop": ("running", "stopped", "stopped_at"),
}


def change_experiment(
    engine: Engine,
    experiment_id: str,
    verb: str,
    actor: str,
    now: datetime,
    *,
    weights: Mapping[str, str] | None = None,
    coverage: str | None = None,
) -> None:
    """``start`` (draft → running), ``stop`` (running → stopped) or ``update`` the coverage
    (draft or running: raising it only adds users) and the weights (draft only: changing them
    while running would move users between variants)."""
    with engine.begin() as connection:
        before = _experiment(connection, experiment_id)
        if before is None:
            raise Refused(f"no experiment {experiment_id!r}")
        status = before["status"]
        values: dict[str, Any]
        if verb in _TRANSITIONS:
            source, target, stamp = _TRANSITIONS[verb]
            if status != source:
                raise Refused(f"{experiment_id} is {status}; only a {source} experiment can {verb}")
            values = {"status": target, stamp: now}
        elif verb == "update":
            if status == "stopped":
                raise Refused(f"{experiment_id} is stopped; create a new experiment instead")
            values = {}
            if coverage is not None:
                values["coverage"] = parse_coverage(coverage)
            if weights:
                parsed = parse_weights(weights)
                if parsed != before["weights"] and status != "draft":
                    raise Refused(
                        "the weights of a running experiment cannot change (users would move "
                        "between variants): stop it and create a new one"
                    )
                if set(parsed) != set(before["variants"]):
                    raise Refused(f"weights must name the variants {sorted(before['variants'])}")
                values["weights"] = json.dumps(parsed, sort_keys=True)
        else:
            raise Refused(f"unknown experiment action {verb!r}")
        connection.execute(
            update(_experiments)
            .where(_experiments.c.experiment_id == experiment_id)
            .values(**values)
        )
        audit.record(
            connection,
            actor=actor,
            action=f"experiment.{verb}",
            target=experiment_id,
            before=before,
            after=_experiment(connection, experiment_id),
            at=now,
        )
