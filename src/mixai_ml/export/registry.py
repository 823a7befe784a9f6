"""The model registry (``model_registry`` table) and the deployable bundle built from it.

Statuses (docs/data_contracts.md §6): ``candidate`` (exported, not serving), ``active`` (serves
``rollout_pct`` % of users; the rest get the rules), ``shadow`` (shipped, not
served), ``retired``. At most one version per task is active. The bundle ships
each task's active version, every shadow version, whatever the running experiments
route to, and the versions the database may switch to without a new bundle: the newest
candidate (a promotion) and the previous active version (a rollback).

The bundle's flags and experiments are a snapshot of the database's run-time control
(``ml_feature_flags``, ``ab_experiments``; :func:`bundle_control`), never of the shell
that builds it; the service reads the database itself and falls back on the snapshot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.adapters import UserAdapters
from mixai_inference.bundle import Experiment, Manifest, ModelEntry, TaskEntry, sha256_bytes
from mixai_inference.tasks import flag_names, task_names, task_spec
from mixai_ml.edge import edge_bundle_entries
from mixai_ml.export.store import ModelStore
from mixai_ml.parameters import settings_section
from mixai_ml.personalization.store import store_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportedModel:
    """A model exported to the store, ready to be registered."""

    task: str
    version: str
    uri: str
    sha256: str
    metrics: Mapping[str, Any]


def model_id(task: str, version: str) -> str:
    return f"{task}:{version}"


def same_weights(registry: pd.DataFrame, task: str, version: str) -> str | None:
    """A registered, non-retired version of ``task`` with the same weights as ``version``.

    Versions end in the hash of their weights (``<time>-<hash>``), so a retrain that
    reproduces a model exactly is recognised and not registered a second time.
    """
    digest = version.rsplit("-", 1)[-1]
    rows = registry[(registry["task"] == task) & (registry["status"] != "retired")]
    twins = [str(v) for v in rows["version"] if str(v).rsplit("-", 1)[-1] == digest]
    return twins[0] if twins else None


def candidate_row(model: ExportedModel, now: datetime) -> dict[str, Any]:
    """A new ``model_registry`` row: a candidate serving nobody yet."""
    return {
        "model_id": model_id(model.task, model.version),
        "task": model.task,
        "version": model.version,
        "uri": model.uri,
        "sha256": model.sha256,
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "status": "candidate",
        "rollout_pct": 0.0,
        "metrics": json.dumps(dict(model.metrics), sort_keys=True),
        "created_at": pd.Timestamp(now),
        "promoted_at": pd.NaT,
    }


def promote(
    registry: pd.DataFrame, task: str, version: str, now: datetime, rollout_pct: float = 100.0
) -> pd.DataFrame:
    """Make ``version`` the task's active model; the previous active one is retired.

    Returns:
        The whole registry after the change.

    Raises:
        ValueError: if the version is not registered for the task.
    """
    promoted_at = pd.to_datetime(registry["promoted_at"], utc=True).astype("datetime64[us, UTC]")
    registry = registry.assign(promoted_at=promoted_at)
    target = (registry["task"] == task) & (registry["version"] == version)
    if not target.any():
        known = registry.loc[registry["task"] == task, "version"].tolist()
        raise ValueError(f"{task} has no registered version {version!r}; registered: {known}")
    previous = (registry["task"] == task) & (registry["status"] == "active") & ~target
    registry.loc[previous, ["status", "rollout_pct"]] = ["retired", 0.0]
    registry.loc[target, ["status", "rollout_pct"]] = ["active", float(rollout_pct)]
    registry.loc[target, "promoted_at"] = pd.Timestamp(now)
    return registry


def rollback(registry: pd.DataFrame, task: str, now: datetime) -> pd.DataFrame:
    """Re-activate the most recently promoted retired version of ``task``.

    Raises:
        ValueError: if there is nothing to roll back to.
    """
    retired = registry[
        (registry["task"] == task)
        & (registry["status"] == "retired")
        & registry["promoted_at"].notna()
    ]
    if retired.empty:
        raise ValueError(f"{task} has no previously active version to roll back to")
    previous = retired.sort_values("promoted_at").iloc[-1]
    return promote(registry, task, str(previous["version"]), now)


def set_rollout(registry: pd.DataFrame, task: str, rollout_pct: float) -> pd.DataFrame:
    """Set the share of users (0–100) the task's active model serves."""
    if not 0.0 <= rollout_pct <= 100.0:
        raise ValueError(f"rollout_pct must be between 0 and 100, got {rollout_pct}")
    active = (registry["task"] == task) & (registry["status"] == "active")
    if not active.any():
        raise ValueError(f"{task} has no active model; promote one first")
    registry = registry.copy()
    registry.loc[active, "rollout_pct"] = float(rollout_pct)
    return registry


def _role_version(registry: pd.DataFrame, task: str, role: str) -> str | None:
    """``active`` / ``candidate`` (the newest) / ``rules`` (None) / an explicit version."""
    rows = registry[registry["task"] == task]
    if role == "rules":
        return None
    if role in {"active", "candidate"}:
        chosen = rows[rows["status"] == role].sort_values("created_at")
        if chosen.empty:
            raise LookupError(f"{task} has no {role} model")
        return str(chosen.iloc[-1]["version"])
    if role not in set(rows["version"]):
        raise LookupError(f"{task} has no version {role}")
    return role


def bundle_control(
    flag_defaults: Mapping[str, bool], flag_rows: pd.DataFrame, experiment_rows: pd.DataFrame
) -> tuple[dict[str, bool], dict[str, dict[str, Any]]]:
    """The bundle's flags and experiments from the database's run-time control tables.

    Args:
        flag_defaults: ``export.flags`` (conf): flags that have no ``ml_feature_flags`` row;
            a name that is not a flag raises.
        flag_rows: The ``ml_feature_flags`` table.
        experiment_rows: The ``ab_experiments`` table; the ``running`` ones are shipped.

    Returns:
        The flags, and the experiments as :func:`build_manifest` takes them.
    """
    flags = {**settings_section(flag_defaults, "export.flags", optional=flag_names(), noun="flag")}
    flags.update((str(row.flag), bool(row.enabled)) for row in flag_rows.itertuples())
    experiments = {
        str(row.experiment_id): {
            "task": str(row.task),
            "variants": json.loads(row.variants),
            "weights": json.loads(row.weights),
            "coverage": float(row.coverage),
        }
        for row in experiment_rows.itertuples()
        if row.status == "running"
    }
    return flags, experiments


def _switchable(rows: pd.DataFrame) -> set[str]:
    """The newest candidate and the previous active version: what the database may promote
    or roll back to while the bundle stays."""
    chosen = set()
    candidates = rows[rows["status"] == "candidate"].sort_values("created_at")
    if len(candidates):
        chosen.add(str(candidates.iloc[-1]["version"]))
    previous = rows[(rows["status"] == "retired") & rows["promoted_at"].notna()]
    if len(previous):
        chosen.add(str(previous.sort_values("promoted_at").iloc[-1]["version"]))
    return chosen


def build_manifest(
    registry: pd.DataFrame,
    flags: Mapping[str, bool],
    experiments: Mapping[str, Mapping[str, Any]],
    now: datetime,
    store: ModelStore,
    edge_graphs: Mapping[str, bytes] | None = None,
    *,
    ood_policy: Mapping[str, str] | None = None,
    adapters: UserAdapters | None = None,
) -> tuple[Manifest, dict[str, bytes]]:
    """The bundle's manifest and files from the registry and the export configuration.

    Args:
        registry: the ``model_registry`` table.
        flags: the bundle's flag defaults (docs/data_contracts.md §1).
        experiments: id -> ``task``, ``variants`` (variant -> ``active``,
            ``candidate``, ``rules`` or a version), ``weights``, ``coverage``.
            An experiment whose roles cannot be resolved (e.g. no candidate) is
            left out, with a log line.
        now: the bundle's creation time.
        store: the model store the registry's URIs point into.
        edge_graphs: the browser's graphs by name (``features``, ``alignment``), shipped
            beside the models (:func:`mixai_ml.edge.edge_bundle_entries`).
        ood_policy: task -> its out-of-distribution policy (``export.ood_policy``; a task
            left out takes the package default, :data:`mixai_inference.ood.DEFAULT_POLICY`;
            a name that is not a registered task raises).
        adapters: the users' adapters to ship; a task's adapters are kept only when they
            were fitted against its active version.

    Returns:
        The manifest, and each shipped file's name and bytes (read from the store): each
        model, and its training reference when the store has one.

    Raises:
        FileNotFoundError: If a shipped model is missing from the store.
        ValueError: If a stored model no longer matches its registered sha256.
    """
    policies = settings_section(ood_policy, "export.ood_policy", optional=task_names(), noun="task")
    chosen: dict[str, set[str]] = {task: set() for task in task_names()}
    shipped_experiments = {}
    for experiment_id, config in experiments.items():
        task = config["task"]
        try:
            variants = {
                name: _role_version(registry, task, role)
                for name, role in config["variants"].items()
            }
        except LookupError as error:
            logger.info("experiment %s not shipped: %s", experiment_id, error)
            continue
        if len(set(variants.values())) < 2:
            logger.info(
                "experiment %s not shipped: its variants serve the same model", experiment_id
            )
            continue
        chosen[task] |= {version for version in variants.values() if version}
        shipped_experiments[experiment_id] = Experiment(
            experiment_id,
            task,
            variants,
            dict(config["weights"]),
            float(config.get("coverage", 1.0)),
            config.get("salt"),
        )
    tasks, files = {}, {}
    for task in task_names():
        spec = task_spec(task)
        rows = registry[registry["task"] == task]
        active = rows[rows["status"] == "active"]
        chosen[task] |= (
            set(active["version"])
            | set(rows.loc[rows["status"] == "shadow", "version"])
            | _switchable(rows)
        )
        models = {}
        for row in rows[rows["version"].isin(chosen[task])].itertuples():
            file_name = f"{task}-{row.version}.onnx"
            try:
                files[file_name] = store.read(str(row.uri), str(row.sha256))
            except (FileNotFoundError, ValueError) as error:
                raise type(error)(f"{file_name}: {error}; refusing to ship it") from None
            reference = _reference(store, str(row.uri), f"{task}-{row.version}.reference.json")
            files.update(reference)
            models[str(row.version)] = ModelEntry(
                version=str(row.version),
                file=file_name,
                sha256=str(row.sha256),
                status=str(row.status),
                rollout_pct=float(row.rollout_pct),
                feature_schema_version=str(row.feature_schema_version),
                input_name=spec.input_tensor,
                input_dim=len(spec.input_names()),
                output_name=spec.output_tensor,
                output_dim=len(spec.outputs),
                metrics=json.loads(row.metrics) if isinstance(row.metrics, str) else {},
                created_at=pd.Timestamp(row.created_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
                reference=next(iter(reference), None),
                reference_sha256=next(map(sha256_bytes, reference.values()), None),
            )
        tasks[task] = TaskEntry(
            str(active.iloc[0]["version"]) if len(active) else None,
            models,
            ood_policy=policies.get(task),
        )
    edge, edge_files = edge_bundle_entries(edge_graphs or {})
    adapter_file = None
    if adapters is not None:
        served = {
            task: entry
            for task, entry in adapters.tasks.items()
            if task in tasks and entry.model_version == tasks[task].active_version
        }
        if served:
            adapter_file, content = store_file(replace(adapters, tasks=served))
            files[adapter_file.file] = content
    manifest = Manifest(
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        tasks=tasks,
        flags=dict(flags),
        experiments=shipped_experiments,
        created_at=pd.Timestamp(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        edge=edge,
        user_adapters=adapter_file,
    )
    return manifest, files | edge_files


def _reference(store: ModelStore, model_uri: str, file_name: str) -> dict[str, bytes]:
    """``{file_name: bytes}`` of a model's training reference, empty when the store has none
    (models exported before references existed, or trained on too few rows)."""
    try:
        return {file_name: store.read(ModelStore.reference_uri(model_uri))}
    except FileNotFoundError:
        return {}


def register_candidates(
    registry: pd.DataFrame,
    exported: list[ExportedModel],
    decisions: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> pd.DataFrame:
    """Add each newly exported model as a candidate and promote those the evaluation chose.

    A model whose weights are registered already (:func:`same_weights`) is not added again.

    Returns:
        The whole registry after the change.
    """
    for model in exported:
        twin = same_weights(registry, model.task, model.version)
        if twin is not None:
            logger.info("%s: weights unchanged since %s; not registered again", model.task, twin)
            continue
        registry = pd.concat(
            [registry, pd.DataFrame([candidate_row(model, now)])], ignore_index=True
        )
        if decisions[model.task]["promote"]:
            registry = promote(registry, model.task, model.version, now)
    return registry


def bundle_summary(manifest: Manifest) -> dict[str, Any]:
    """Per task its active version and shipped versions, and the shipped experiments."""
    summary: dict[str, Any] = {
        task: {"active_version": entry.active_version, "versions": sorted(entry.models)}
        for task, entry in manifest.tasks.items()
    }
    summary["experiments"] = sorted(manifest.experiments)
    return summary
