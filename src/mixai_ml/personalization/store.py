"""The store of per-user adapters the bundle ships, and the purge of a user from it.

Adapters are fitted at export against each personalised task's *active* version (the one
production serves), from every labelled job of every user the model input allows (consent
given, not excluded), with the prior of the validation users (:mod:`.adapters`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.adapters import ADAPTERS_FILE, AdapterFile, TaskAdapters, UserAdapters
from mixai_inference.bundle import read_manifest, sha256_bytes, write_bundle
from mixai_inference.tasks import task_spec
from mixai_ml.personalization.adapters import task_prior, user_numbers
from mixai_ml.training.reference import served_outputs

logger = logging.getLogger(__name__)


def fit_task_adapters(
    task: str, model_version: str, model_input: pd.DataFrame, outputs: np.ndarray
) -> dict[str, Any]:
    """One task's adapters against ``model_version``.

    Args:
        task: a personalised task.
        model_version: the version whose answers ``outputs`` are.
        model_input: the task's model input (every split).
        outputs: that version's raw outputs for each row of ``model_input``.

    Returns:
        ``task``, ``model_version``, ``prior`` (for the record) and ``users``
        (user -> adapter numbers).
    """
    spec = task_spec(task)
    served = served_outputs(spec, np.asarray(outputs, dtype=float))
    prior = task_prior(spec, model_input, served)
    users = user_numbers(spec, prior, model_input, served)
    logger.info("%s: adapters of %d users against %s", task, len(users), model_version)
    return {
        "task": task,
        "model_version": model_version,
        "prior": prior.to_json(),
        "users": users,
    }


def adapter_store(fitted: Iterable[Mapping[str, Any]], created_at: str) -> UserAdapters | None:
    """The store of the fitted tasks' adapters, or ``None`` when no user has one."""
    tasks = {
        entry["task"]: TaskAdapters(
            str(entry["model_version"]),
            {user: tuple(values) for user, values in entry["users"].items()},
        )
        for entry in fitted
        if entry and entry.get("users")
    }
    return UserAdapters(tasks, created_at) if tasks else None


def store_file(store: UserAdapters) -> tuple[AdapterFile, bytes]:
    """The manifest entry and the bytes of a store."""
    content = store.to_bytes()
    return AdapterFile(ADAPTERS_FILE, sha256_bytes(content)), content


def purge_users_from_bundle(bundle_dir: Path, users: set[str]) -> pd.Series:
    """Remove ``users``' adapters from a bundle's store, rewriting the bundle atomically
    (a new store file and its SHA-256 in the manifest).

    Returns:
        Per user, the number of task adapters removed (only users who had some).
    """
    manifest = read_manifest(bundle_dir)
    entry = manifest.user_adapters
    if entry is None:
        return pd.Series(dtype=int)
    data = (bundle_dir / entry.file).read_bytes()
    if sha256_bytes(data) != entry.sha256:
        raise ValueError(f"{bundle_dir / entry.file}: sha256 differs from the manifest's")
    store = UserAdapters.from_json(json.loads(data))
    removed = pd.Series(
        {user: sum(user in task.users for task in store.tasks.values()) for user in sorted(users)},
        dtype=int,
    )
    removed = removed[removed > 0]
    if removed.empty:
        return removed
    kept = store.without(set(removed.index))
    new_entry, content = store_file(kept)
    files: dict[str, bytes | Path] = {
        name: bundle_dir / name for name in manifest.files if name != entry.file
    }
    files[new_entry.file] = content
    write_bundle(bundle_dir, replace(manifest, user_adapters=new_entry), files)
    return removed
