"""Model inputs of the three tasks: governance, labels, user-level splits.

Everything here is plain pandas/numpy so that it can be tested without Kedro.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference import ALIGNMENT_FEATURE_NAMES, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference.routing import hash_unit
from mixai_inference.tasks import ALIGN_CONF, MASTER_PARAM_RANGES, MASTER_REG, PRESET_CLS, PRESETS
from mixai_ml.governance import eligible_jobs

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    """What a task learns from and what it predicts."""

    name: str
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]


TASK_SPECS: Mapping[str, TaskSpec] = {
    MASTER_REG: TaskSpec(MASTER_REG, FEATURE_NAMES, tuple(MASTER_PARAM_RANGES)),
    PRESET_CLS: TaskSpec(PRESET_CLS, FEATURE_NAMES, ("preset",)),
    ALIGN_CONF: TaskSpec(ALIGN_CONF, ALIGNMENT_FEATURE_NAMES, ("aligned_ok",)),
}


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``, with a clear error for unknown names."""
    try:
        return TASK_SPECS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_SPECS)}") from None


def _decode_one(task: str, raw: str) -> dict[str, float] | None:
    try:
        label = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    if not isinstance(label, dict):
        return None
    if task == MASTER_REG:
        values = {}
        for name, (low, high) in MASTER_PARAM_RANGES.items():
            value = label.get(name)
            if not isinstance(value, int | float) or not low <= value <= high:
                return None
            values[name] = float(value)
        return values
    if task == PRESET_CLS:
        preset = label.get("preset")
        return {"preset": float(PRESETS.index(preset))} if preset in PRESETS else None
    ok = label.get("aligned_ok")
    return {"aligned_ok": float(ok)} if isinstance(ok, bool) else None


def decode_labels(labels: pd.DataFrame, task: str) -> tuple[pd.DataFrame, int]:
    """Parse the ``labels`` rows of ``task`` into numeric target columns.

    ``preset`` becomes its index in :data:`PRESETS`, ``aligned_ok`` 0/1; labels
    that do not follow CONTRACTS §5 (bad JSON, missing keys, out-of-range values)
    are dropped.

    Returns:
        ``job_id`` plus the task's target columns, and the number of rows dropped.
    """
    rows = labels[labels["task"] == task]
    decoded = [_decode_one(task, raw) for raw in rows["label"]]
    valid = [value is not None for value in decoded]
    targets = pd.DataFrame([value for value in decoded if value is not None])
    targets.insert(0, "job_id", rows["job_id"].astype(str).to_numpy()[valid])
    if targets.shape[1] == 1:  # no valid rows: keep the columns
        targets = pd.DataFrame(columns=["job_id", *task_spec(task).target_names])
    return targets, len(rows) - int(sum(valid))


def assign_splits(
    user_ids: pd.Series, *, test_fraction: float, validation_fraction: float, salt: str
) -> pd.Series:
    """Split by user with a hash of the user id, so every user is on one side only.

    The test users depend only on ``salt`` and the user id, so the test set stays
    the same across retrains as users come and go. Validation users are drawn
    from the rest with an independent hash.

    Args:
        user_ids: one entry per row (repeated users get the same split).
        test_fraction: share of users in the test split, in (0, 1).
        validation_fraction: share of users in the validation split.
        salt: fixes the split; change it only to draw a new test set on purpose.

    Returns:
        ``"train"``, ``"validation"`` or ``"test"`` per row.
    """
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1 - test_fraction):
        raise ValueError(
            "need 0 < test_fraction < 1 and 0 < validation_fraction < 1 - test_fraction, "
            f"got {test_fraction} and {validation_fraction}"
        )
    unique = pd.Series(user_ids.astype(str).unique())
    test = unique.map(lambda user: hash_unit(salt, "test", user) < test_fraction)
    validation_share = validation_fraction / (1 - test_fraction)
    validation = unique.map(lambda user: hash_unit(salt, "validation", user) < validation_share)
    split = np.where(test, "test", np.where(validation, "validation", "train"))
    return user_ids.astype(str).map(dict(zip(unique, split, strict=True)))


def build_model_input(
    task: str,
    features_store: pd.DataFrame,
    labels: pd.DataFrame,
    jobs: pd.DataFrame,
    consent: pd.DataFrame,
    exclusions: pd.DataFrame,
    split: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Join features, labels and jobs, keep what users allow, split by user.

    Args:
        task: one of the three tasks.
        features_store, labels, jobs, consent, exclusions: the tables of the
            same names (CONTRACTS §4).
        split: ``test_fraction``, ``validation_fraction`` and ``salt``.

    Returns:
        One row per trainable job (``job_id``, ``user_id``, ``split``, input
        features, targets), and the governance counts: rows dropped per reason
        (``no_consent``, ``withdrawn``, ``excluded_<reason>``, ``invalid_label``,
        ``missing_features``) with the ``labelled`` and ``n_samples`` totals.
    """
    spec = task_spec(task)
    targets, invalid = decode_labels(labels, task)
    labelled = targets.merge(jobs[["job_id", "user_id"]].astype(str), on="job_id", how="inner")
    eligibility = eligible_jobs(labelled, consent, exclusions)
    counts = {**eligibility.counts, "labelled": eligibility.counts["labelled"] + invalid}
    counts["invalid_label"] = invalid
    current = features_store[features_store["schema_version"] == FEATURE_SCHEMA_VERSION]
    current = current.dropna(subset=list(spec.input_names))
    frame = eligibility.eligible.merge(
        current[["job_id", *spec.input_names]].astype({"job_id": str}), on="job_id", how="inner"
    ).copy()  # one block: the wide merge result is fragmented
    counts["missing_features"] = counts.pop("eligible") - len(frame)
    counts["n_samples"] = len(frame)
    frame = frame.assign(split=assign_splits(frame["user_id"], **split).to_numpy())
    columns = ["job_id", "user_id", "split", *spec.input_names, *spec.target_names]
    frame = frame[columns].sort_values("job_id", kind="stable").reset_index(drop=True)
    logger.info("%s: governance %s", task, counts)
    return frame, counts


def arrays(frame: pd.DataFrame, task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (float32, (n, n_inputs)) and targets of one split of a model input."""
    spec = task_spec(task)
    rows = frame[frame["split"] == split]
    inputs = rows[list(spec.input_names)].to_numpy(dtype=np.float32, copy=True)
    targets = rows[list(spec.target_names)].to_numpy(dtype=np.float32, copy=True)
    return inputs, targets[:, 0] if task != MASTER_REG else targets
