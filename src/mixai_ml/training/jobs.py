"""Rows of ``training_jobs``: the keys and records of training runs, light enough for the
console to queue runs without importing the training stack (torch)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd


def new_training_job_id(task: str, at: datetime) -> str:
    """``<task>-<YYYYmmddTHHMMSS>-<6 hex>``: a new ``training_jobs`` key."""
    return f"{task}-{at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def training_job_row(
    training_job_id: str,
    task: str,
    status: str,
    *,
    started_at: datetime,
    n_samples: int,
    reason: str = "",
    model_version: str | None = None,
    finished_at: datetime | None = None,
    governance: str | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """One row of ``training_jobs``."""
    return pd.DataFrame(
        [
            {
                "training_job_id": training_job_id,
                "task": task,
                "status": status,
                "reason": reason or None,
                "n_samples": n_samples,
                "model_version": model_version,
                "started_at": pd.Timestamp(started_at),
                "finished_at": pd.Timestamp(finished_at) if finished_at else pd.NaT,
                "governance": governance,
                "run_id": run_id,
            }
        ]
    )
