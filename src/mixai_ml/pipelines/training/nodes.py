"""Thin Kedro nodes of the training pipeline; the logic is in :mod:`mixai_ml.training`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mixai_ml.training import data, jobs, multitask, runs
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
    row = jobs.training_job_row(
        str(queued_id) if queued_id else jobs.new_training_job_id(task, started_at),
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


def train_single(
    model_input: pd.DataFrame,
    training_job: pd.DataFrame,
    params: dict[str, Any],
    reference: dict[str, Any] | None = None,
    *,
    task: str,
) -> TrainedTask:
    """Train the task's own network, its scikit-learn baseline and, given ``reference``'s
    parameters, its training reference (or keep ``skipped``)."""
    started = training_job.iloc[0].to_dict()
    trained = runs.train_task(task, model_input, started, params, reference=reference)
    trained.info["governance"] = json.loads(started["governance"])
    return trained


def _finished(trained: TrainedTask, training_job: pd.DataFrame) -> pd.DataFrame:
    """The run's row, ``succeeded`` with the candidate's version once a model trained."""
    finished = training_job.copy()
    if trained.trained:
        finished["status"] = "succeeded"
        finished["model_version"] = trained.version
        finished["finished_at"] = pd.Timestamp.now(tz="UTC")
    return finished


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
    trained = train_single(model_input, training_job, params, reference, task=task)
    return trained, _finished(trained, training_job)


def train_multitask(
    features_store: pd.DataFrame,
    labels: pd.DataFrame,
    jobs: pd.DataFrame,
    ml_consent: pd.DataFrame,
    ml_exclusions: pd.DataFrame,
    split: dict[str, Any],
    min_samples: int,
    params: dict[str, Any],
    *training_jobs: pd.DataFrame,
    trunk: str,
    tasks: tuple[str, ...],
) -> tuple[TrainedTask, ...]:
    """The multi-task network of a trunk, one head per task (see
    :mod:`mixai_ml.training.multitask`), on the same governed inputs and gate as each task.

    Args:
        params: ``multitask`` of ``parameters_training.yml`` (per trunk ``net`` and ``fit``).
        training_jobs: each task's run (in ``tasks`` order): a head is its task's candidate
            only in the run it trained in (:func:`mixai_ml.training.runs.choose_candidate`).
        trunk: the trunk's name.
        tasks: its tasks.

    Returns:
        Each task's head, in ``tasks`` order; a task below the gate gets a skipped record, and
        when fewer than two tasks may train nothing trains.
    """
    allowed = {}
    for task in tasks:
        frame, _ = data.build_model_input(
            task, features_store, labels, jobs, ml_consent, ml_exclusions, split
        )
        if not runs.gate(frame["split"].value_counts().to_dict(), int(min_samples)):
            allowed[task] = frame
    heads: dict[str, TrainedTask] = {}
    if len(allowed) > 1:
        heads = multitask.train_shared(allowed, params[trunk], now=datetime.now(UTC), trunk=trunk)
    for task, training_job in zip(tasks, training_jobs, strict=True):
        if task in heads:
            heads[task].info["training_job_id"] = training_job["training_job_id"].iloc[0]
    reason = f"the {trunk} trunk needs at least two of {list(tasks)} to train"
    return tuple(heads.get(task, TrainedTask(task, "skipped", reason=reason)) for task in tasks)


def choose_candidate(
    single_task: TrainedTask,
    multi_task: TrainedTask,
    model_input: pd.DataFrame,
    training_job: pd.DataFrame,
    reference: dict[str, Any],
    *,
    task: str,
) -> tuple[TrainedTask, pd.DataFrame]:
    """The candidate: the task's own network or its multi-task head, the better on validation,
    with the training reference of the chosen network."""
    chosen = runs.with_reference(
        runs.choose_candidate(single_task, multi_task, model_input), model_input, reference
    )
    return chosen, _finished(chosen, training_job)
