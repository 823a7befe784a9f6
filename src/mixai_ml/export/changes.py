"""Registry changes applied to a project: the one path of ``mixai-registry`` and the console.

A change (promote, set the rollout, roll back) is written to the project's ``model_registry``
and its bundle is rebuilt atomically from the model store with the export configuration, as
``kedro run --pipelines=export`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import pandas as pd
from kedro.framework.context import KedroContext

from mixai_inference.bundle import Manifest
from mixai_ml.datasets.bundle import BundleDataset
from mixai_ml.export import registry

Command = Literal["promote", "rollout", "rollback"]
COMMANDS: tuple[Command, ...] = ("promote", "rollout", "rollback")


@dataclass(frozen=True)
class RegistryChange:
    """The task's registry rows before and after a change, and the rebuilt bundle's manifest."""

    task: str
    before: pd.DataFrame
    after: pd.DataFrame
    manifest: Manifest


def apply_change(
    context: KedroContext,
    command: Command,
    task: str,
    now: datetime,
    *,
    version: str | None = None,
    rollout_pct: float | None = None,
) -> RegistryChange:
    """Apply one registry command to the project of ``context`` and rebuild its bundle.

    Args:
        command: ``promote`` (``version``, at ``rollout_pct``, default 100), ``rollout``
            (the active model's ``rollout_pct``) or ``rollback`` (re-activate the previous
            active version).

    Raises:
        ValueError, LookupError, FileNotFoundError: When the change is refused (nothing is
            written); the message says why.
    """
    catalog = context.catalog
    current = catalog.load("model_registry")
    if command == "promote":
        if version is None:
            raise ValueError("promote needs the version to promote")
        percent = 100.0 if rollout_pct is None else rollout_pct
        changed = registry.promote(current, task, version, now, percent)
    elif command == "rollout":
        if rollout_pct is None:
            raise ValueError("rollout needs the percentage of users (0-100)")
        changed = registry.set_rollout(current, task, rollout_pct)
    elif command == "rollback":
        changed = registry.rollback(current, task, now)
    else:
        raise ValueError(f"unknown registry command {command!r}; one of {COMMANDS}")
    # the database's flags and experiments, never the operator's shell
    flags, experiments = registry.bundle_control(
        context.params["export"]["flags"],
        catalog.load("ml_feature_flags"),
        catalog.load("ab_experiments"),
    )
    bundle = cast(BundleDataset, catalog["model_bundle"])
    manifest, files = registry.build_manifest(
        changed,
        flags,
        experiments,
        now,
        catalog.load("model_store"),
        catalog.load("edge_graphs"),
        ood_policy=context.params["export"]["ood_policy"],
        adapters=bundle.adapters(),  # kept where they still match the active version
    )
    catalog.save("model_registry_updates", changed)
    catalog.save("model_bundle", (manifest, files))
    return RegistryChange(
        task,
        current[current["task"] == task].reset_index(drop=True),
        changed[changed["task"] == task].reset_index(drop=True),
        manifest,
    )
