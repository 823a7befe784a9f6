"""Thin Kedro nodes of the training pipeline; the logic is in :mod:`mixai_ml.training`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mixai_ml.training import data, runs
from mixai_ml.training.artifact import TrainedTask


def select_training_data(
    features_store: pd.DataFrame,
    labels: pd.DataFrame,
    jobs: pd.DataFrame,
    ml_consent: pd.DataFrame,
    ml_exclusions: pd.DataFrame,
    split: dict[str, Any],
    *,
    task: str,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Features ⋈ labels ⋈ jobs of consenting, non-excluded users, split by user."""
    return data.build_model_input(
        task, features_store, labels, jobs, ml_consent, ml_exclusions, split
    )


def start_training_job(
    model_input: pd.DataFrame,
    governance: dict[str, int],
    min_samples: int,
    queued: Mapping[str, Any],
    *,
    task: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Start the run: its ``training_jobs`` row, ``running`` or ``skipped`` below the gate.

    Args:
        queued: ``run_id`` and ``jobs`` (task → ``training_job_id``): rows the console or
            ``/api/cron/train`` queued for this run, taken over instead of starting new ones.

    Returns:
        The row twice: for this run's ``train`` node and for the table.
    """
    reason = runs.gate(model_input["split"].value_counts().to_dict(), int(min_samples))
    started_at = datetime.now(UTC)
    queued_id = (queued.get("jobs") or {}).get(task)
    row = runs.training_job_row(
        str(queued_id) if queued_id else runs.new_training_job_id(task, started_at),
        task,
        "skipped" if reason else "running",
        started_at=started_at,
        n_samples=governance["n_samples"],
        reason=reason,
        finished_at=started_at if reason else None,
        governance=json.dumps(governance, sort_keys=True),
        run_id=queued.get("run_id") if queued_id else None,
    )
    return row, row.copy()


def train(
    model_input: pd.DataFrame,
    training_job: pd.DataFrame,
    params: dict[str, Any],
    reference: dict[str, Any],
    *,
    task: str,
) -> tuple[TrainedTask, pd.DataFrame]:
    """Train the task's model, baseline and training reference; mark the run ``succeeded``
    (or keep ``skipped``)."""
    started = training_job.iloc[0].to_dict()
    trained = runs.train_task(task, model_input, started, params, reference=reference)
    trained.info["governance"] = json.loads(started["governance"])
    finished = training_job.copy()
    if trained.trained:
        finished["status"] = "succeeded"
        finished["model_version"] = trained.version
        finished["finished_at"] = pd.Timestamp.now(tz="UTC")
    return trained, finished
