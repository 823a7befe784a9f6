"""Model inputs of a task: governance, labels, user-level splits.

Everything here is plain pandas/numpy so that it can be tested without Kedro.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.routing import hash_unit
from mixai_inference.tasks import TaskSpec, task_spec
from mixai_ml.governance import eligible_jobs
from mixai_ml.parameters import settings_section

logger = logging.getLogger(__name__)


def _decode_one(spec: TaskSpec, raw: str) -> dict[str, float] | None:
    try:
        label = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    values = spec.decode_label(label)
    return None if values is None else dict(zip(spec.targets, values, strict=True))


def decode_labels(labels: pd.DataFrame, task: str) -> tuple[pd.DataFrame, int]:
    """Parse the ``labels`` rows of ``task`` into numeric target columns.

    Targets come from :meth:`TaskSpec.decode_label
    <mixai_inference.tasks.TaskSpec.decode_label>` (a class becomes its index, a boolean
    0/1); labels that break docs/data_contracts.md §3 (bad JSON, missing keys,
    out-of-range values) are dropped.

    Returns:
        ``job_id`` plus the task's target columns, and the number of rows dropped.
    """
    spec = task_spec(task)
    rows = labels[labels["task"] == task]
    decoded = [_decode_one(spec, raw) for raw in rows["label"]]
    valid = [value is not None for value in decoded]
    targets = pd.DataFrame([value for value in decoded if value is not None])
    targets.insert(0, "job_id", rows["job_id"].astype(str).to_numpy()[valid])
    if targets.shape[1] == 1:  # no valid rows: keep the columns
        targets = pd.DataFrame(columns=["job_id", *spec.targets])
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
        task: a registered task.
        features_store, labels, jobs, consent, exclusions: the tables of the
            same names (docs/data_contracts.md §2).
        split: ``test_fraction``, ``validation_fraction`` and ``salt``.

    Returns:
        One row per trainable job (``job_id``, ``user_id``, ``split``, input
        features, targets), and the governance counts: rows dropped per reason
        (``no_consent``, ``withdrawn``, ``excluded_<reason>``, ``invalid_label``,
        ``missing_features``) with the ``labelled`` and ``n_samples`` totals.
    """
    split = settings_section(
        split, "training.split", required=("test_fraction", "validation_fraction", "salt")
    )
    spec = task_spec(task)
    targets, invalid = decode_labels(labels, task)
    labelled = targets.merge(jobs[["job_id", "user_id"]].astype(str), on="job_id", how="inner")
    eligibility = eligible_jobs(labelled, consent, exclusions)
    counts = {**eligibility.counts, "labelled": eligibility.counts["labelled"] + invalid}
    counts["invalid_label"] = invalid
    current = features_store[features_store["schema_version"] == FEATURE_SCHEMA_VERSION]
    input_names = spec.input_names()
    current = current.dropna(subset=list(input_names))
    frame = eligibility.eligible.merge(
        current[["job_id", *input_names]].astype({"job_id": str}), on="job_id", how="inner"
    ).copy()  # one block: the wide merge result is fragmented
    counts["missing_features"] = counts.pop("eligible") - len(frame)
    counts["n_samples"] = len(frame)
    frame = frame.assign(split=assign_splits(frame["user_id"], **split).to_numpy())
    columns = ["job_id", "user_id", "split", *input_names, *spec.targets]
    frame = frame[columns].sort_values("job_id", kind="stable").reset_index(drop=True)
    logger.info("%s: governance %s", task, counts)
    return frame, counts


def arrays(frame: pd.DataFrame, task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (float32, (n, n_inputs)) and targets of one split of a model input.

    Targets are ``(n, n_outputs)`` for a regression, ``(n,)`` (class index or 0/1) otherwise.
    """
    spec = task_spec(task)
    rows = frame[frame["split"] == split]
    inputs = rows[list(spec.input_names())].to_numpy(dtype=np.float32, copy=True)
    targets = rows[list(spec.targets)].to_numpy(dtype=np.float32, copy=True)
    return inputs, targets if spec.kind == "regression" else targets[:, 0]
