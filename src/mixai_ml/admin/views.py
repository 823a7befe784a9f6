"""What the console shows: read-only queries over the application database.

Each function returns plain rows (dicts) or frames for the templates; nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from mixai_inference.flags import default_flags, env_var
from mixai_inference.tasks import flag_names, task_names, task_spec
from mixai_ml.admin.runs import utc
from mixai_ml.datasets.sql import to_utc
from mixai_ml.db import schema
from mixai_ml.privacy import PURGE_DEADLINE, pending_withdrawals

AUDIT_PAGE = 50


def _rows(engine: Engine, query: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@dataclass(frozen=True)
class FlagState:
    flag: str
    enabled: bool
    source: str
    """``console`` (a row of ``ml_feature_flags``), ``bundle`` or ``default``."""
    updated_at: datetime | None
    updated_by: str | None

    @property
    def env_var(self) -> str:
        return env_var(self.flag)


def flags(engine: Engine, bundle_flags: Mapping[str, bool]) -> list[FlagState]:
    """Each flag as the inference service resolves it without environment overrides."""
    table = schema.ml_feature_flags
    stored = {row["flag"]: row for row in _rows(engine, select(table))}
    states = []
    for flag in flag_names():
        row = stored.get(flag)
        if row is not None:
            states.append(
                FlagState(
                    flag, bool(row["enabled"]), "console", row["updated_at"], row["updated_by"]
                )
            )
        elif flag in bundle_flags:
            states.append(FlagState(flag, bool(bundle_flags[flag]), "bundle", None, None))
        else:
            states.append(FlagState(flag, default_flags()[flag], "default", None, None))
    return states


@dataclass(frozen=True)
class PolicyState:
    """A task's out-of-distribution policy as the inference service resolves it without
    ``MIXAI_OOD_POLICY``."""

    task: str
    stored: str | None
    """The console's policy (``ml_task_settings.ood_policy``); ``None``: the bundle's."""
    bundle: str
    """The bundle's policy, else the package default."""
    updated_at: datetime | None
    updated_by: str | None

    @property
    def policy(self) -> str:
        return self.stored or self.bundle


def ood_policies(engine: Engine, bundle_policies: Mapping[str, str]) -> list[PolicyState]:
    """Each registered task's policy; ``bundle_policies``: task → its policy without the
    console's (:meth:`~mixai_ml.admin.console.Console.bundle_ood_policies`)."""
    stored = {row["task"]: row for row in _rows(engine, select(schema.ml_task_settings))}
    states = []
    for task in task_names():
        row = stored.get(task) or {}
        states.append(
            PolicyState(
                task,
                row.get("ood_policy"),
                bundle_policies[task],
                row.get("updated_at"),
                row.get("updated_by"),
            )
        )
    return states


def registry(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Per task its registered versions: active first, then newest first; ``metrics`` parsed
    and ``primary`` (the task's primary metric) picked out."""
    table = schema.model_registry
    rows = _rows(engine, select(table).order_by(table.c.created_at.desc()))
    order = {"active": 0, "shadow": 1, "candidate": 2, "retired": 3}
    by_task: dict[str, list[dict[str, Any]]] = {task: [] for task in task_names()}
    for row in sorted(rows, key=lambda r: order.get(r["status"], 9)):
        metrics = json.loads(row["metrics"]) if row["metrics"] else {}
        spec = task_spec(row["task"]) if row["task"] in by_task else None
        row["metrics"] = metrics
        row["primary"] = (spec.primary_metric, metrics.get(spec.primary_metric)) if spec else None
        by_task.setdefault(row["task"], []).append(row)
    return by_task


def experiments(engine: Engine) -> list[dict[str, Any]]:
    """Every experiment, newest first, with its assigned users per variant."""
    table, assigned = schema.ab_experiments, schema.ab_test_assignments
    counts: dict[str, dict[str, int]] = {}
    query = select(assigned.c.experiment_id, assigned.c.variant, func.count()).group_by(
        assigned.c.experiment_id, assigned.c.variant
    )
    for experiment_id, variant, n in _rows_tuples(engine, query):
        counts.setdefault(str(experiment_id), {})[str(variant)] = int(n)
    rows = _rows(engine, select(table))
    for row in rows:
        row["variants"], row["weights"] = json.loads(row["variants"]), json.loads(row["weights"])
        row["assigned"] = counts.get(row["experiment_id"], {})
    status_order = {"running": 0, "draft": 1, "stopped": 2}
    return sorted(rows, key=lambda r: (status_order.get(r["status"], 3), r["experiment_id"]))


def _rows_tuples(engine: Engine, query: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def ab_results(engine: Engine, experiment_id: str | None = None) -> pd.DataFrame:
    """The latest ``ab_test_results`` (of one experiment), as ``ab_analysis`` wrote them."""
    table = schema.ab_test_results
    query = select(table).order_by(table.c.experiment_id, table.c.metric, table.c.variant)
    if experiment_id is not None:
        query = query.where(table.c.experiment_id == experiment_id)
    with engine.connect() as connection:
        return to_utc(pd.read_sql_query(query, connection), ["analysed_at"])


def training_jobs(engine: Engine, limit: int = 60) -> list[dict[str, Any]]:
    """The newest ``training_jobs`` rows, queued ones first."""
    table = schema.training_jobs
    query = (
        select(table)
        .order_by(table.c.started_at.is_(None).desc(), table.c.started_at.desc())
        .limit(limit)
    )
    return _rows(engine, query)


def runs(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The newest console and trigger runs."""
    table = schema.pipeline_runs
    return _rows(engine, select(table).order_by(table.c.requested_at.desc()).limit(limit))


def privacy(engine: Engine, now: datetime) -> dict[str, Any]:
    """Consent counts, withdrawals waiting for the purge and the oldest one's age."""
    consent, jobs = schema.ml_consent, schema.jobs
    withdrawn = (consent.c.consented.is_(False)) | consent.c.withdrawn_at.is_not(None)
    with engine.connect() as connection:
        users = connection.execute(select(func.count(func.distinct(jobs.c.user_id)))).scalar_one()
        asked = connection.execute(select(func.count()).select_from(consent)).scalar_one()
        out = connection.execute(
            select(func.count()).select_from(consent).where(withdrawn)
        ).scalar_one()
    pending = pending_withdrawals(engine, now)
    oldest = pending["age"].max() if len(pending) else None
    return {
        "consented": int(asked) - int(out),
        "withdrawn": int(out),
        "never_asked": max(0, int(users) - int(asked)),
        "pending": pending.to_dict("records"),
        "oldest_age": oldest,
        "deadline": PURGE_DEADLINE,
        "overdue": oldest is not None and oldest > PURGE_DEADLINE,
        "last_purge": _last_purge(engine),
    }


def _last_purge(engine: Engine) -> datetime | None:
    table = schema.pipeline_runs
    query = select(func.max(table.c.finished_at)).where(
        table.c.kind == "purge", table.c.status == "succeeded"
    )
    with engine.connect() as connection:
        return utc(connection.execute(query).scalar_one())


def audit_log(
    engine: Engine, page: int = 0, action: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """One page of the audit log, newest first (optionally one action's ``<object>.``), and the
    number of rows it has."""
    table = schema.admin_audit_log
    condition = table.c.action.startswith(action, autoescape=True) if action else None
    query = select(table).order_by(table.c.at.desc()).limit(AUDIT_PAGE).offset(page * AUDIT_PAGE)
    count = select(func.count()).select_from(table)
    if condition is not None:
        query, count = query.where(condition), count.where(condition)
    with engine.connect() as connection:
        total = int(connection.execute(count).scalar_one())
    return _rows(engine, query), total
