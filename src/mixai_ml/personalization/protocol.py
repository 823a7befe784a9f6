"""Per-user adapters evaluated as production uses them: a user's earlier jobs are their
history, each later job is answered with the adapter of the jobs before it.

Test users never trained the population model; each of their jobs is scored with the
adapter fitted on their jobs created before it (by ``created_at``, then ``job_id``), and
grouped by how many prior jobs the user had (the buckets ``0``, ``1``, ``2``, ``5`` and
``10+``: ``2`` holds 2–4 prior jobs, ``5`` 5–9). Each bucket reports the personalised and
the population answers' primary metric with a paired bootstrap CI of their difference,
resampling users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import TaskSpec
from mixai_ml.evaluation.bootstrap import paired_bootstrap
from mixai_ml.evaluation.metrics import primary_metric_function
from mixai_ml.personalization.adapters import Prior, job_statistics, personalised_outputs


def chronological(frame: pd.DataFrame, created_at: pd.Series) -> pd.DataFrame:
    """``frame`` (with ``job_id`` and ``user_id``) ordered by user, then creation, then job id,
    with ``prior_jobs``: how many of the user's jobs came before each one."""
    when = pd.to_datetime(frame["job_id"].map(created_at), utc=True)
    ordered = frame.assign(created_at=when.to_numpy()).sort_values(
        ["user_id", "created_at", "job_id"], kind="stable"
    )
    return ordered.assign(prior_jobs=ordered.groupby("user_id").cumcount().to_numpy())


def history_numbers(
    spec: TaskSpec,
    prior: Prior,
    targets: np.ndarray,
    outputs: np.ndarray,
    users: np.ndarray,
) -> np.ndarray:
    """Each job's adapter fitted on the jobs before it (rows in :func:`chronological` order).

    Args:
        targets, outputs: the jobs' labels and population answers.
        users: each row's user; a user's rows are consecutive and in time order.
    """
    statistics = job_statistics(spec, targets, outputs)
    per_user = pd.DataFrame(statistics).groupby(users, sort=False)
    before = per_user.cumsum().to_numpy() - statistics
    counts = per_user.cumcount().to_numpy()
    return prior.numbers(before, counts)


def bucket_labels(prior_jobs: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """The bucket of each prior-job count: the largest edge not above it, the last as ``<e>+``."""
    index = np.searchsorted(np.asarray(edges), prior_jobs, side="right") - 1
    labels = [str(edge) for edge in edges[:-1]] + [f"{edges[-1]}+"]
    return np.array(labels, dtype=object)[index]


def compare(
    spec: TaskSpec,
    targets: np.ndarray,
    contenders: Mapping[str, np.ndarray],
    users: np.ndarray,
    bootstrap: Mapping[str, Any],
) -> dict[str, Any]:
    """One group of jobs: each contender's primary metric and the CI of personalised minus
    population (``contenders`` has ``model``, ``population`` and maybe ``oracle``)."""
    metric = primary_metric_function(spec)
    result: dict[str, Any] = {"n": len(targets), "n_users": len(set(users))}
    result.update({name: metric(targets, values) for name, values in contenders.items()})
    interval = paired_bootstrap(
        targets,
        contenders["model"],
        contenders["population"],
        metric,
        groups=users,
        **bootstrap,
    )
    return {
        **result,
        "diff": interval["difference"],
        "diff_ci_low": interval["ci_low"],
        "diff_ci_high": interval["ci_high"],
    }


def evaluate_by_history(
    spec: TaskSpec,
    frame: pd.DataFrame,
    prior: Prior,
    params: Mapping[str, Any],
    bootstrap: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The personalised answers of the test jobs by prior-job count, against the population.

    Args:
        spec: A personalised task.
        frame: :func:`chronological` test jobs with ``targets`` (``spec.targets`` columns),
            ``population_<output>`` and, when the world's truth is known, ``oracle_<output>``.
        prior: The task's prior (:func:`~mixai_ml.personalization.adapters.fit_prior`).
        params: ``buckets`` (prior-job count edges) and ``returning_from`` (the prior-job
            count from which a user counts as returning, for the summary).
        bootstrap: :func:`~mixai_ml.evaluation.bootstrap.paired_bootstrap` settings.

    Returns:
        ``personalized``: per bucket ``n``, ``n_users``, ``model`` (personalised),
        ``population``, ``oracle`` (when known), ``diff`` and its CI; and the summary of the
        returning users' jobs with the prior's details.
    """
    columns = list(spec.targets)
    targets = frame[columns].to_numpy(dtype=float)
    targets = targets if spec.kind == "regression" else targets[:, 0]
    users = frame["user_id"].astype(str).to_numpy()
    population = frame[[f"population_{name}" for name in spec.outputs]].to_numpy(dtype=float)
    numbers = history_numbers(spec, prior, targets, population, users)
    contenders = {
        "model": personalised_outputs(spec, population, numbers),
        "population": population,
    }
    oracle_columns = [f"oracle_{name}" for name in spec.outputs]
    if set(oracle_columns) <= set(frame.columns) and frame[oracle_columns].notna().all().all():
        contenders["oracle"] = frame[oracle_columns].to_numpy(dtype=float)
    prior_jobs = frame["prior_jobs"].to_numpy()
    buckets = bucket_labels(prior_jobs, list(params["buckets"]))
    by_bucket = {}
    for label in dict.fromkeys(bucket_labels(np.asarray(params["buckets"]), params["buckets"])):
        inside = buckets == label
        if inside.any():
            by_bucket[str(label)] = compare(
                spec,
                targets[inside],
                {name: values[inside] for name, values in contenders.items()},
                users[inside],
                bootstrap,
            )
    returning_from = int(params["returning_from"])
    returning = prior_jobs >= returning_from
    summary: dict[str, Any] = {"returning_from": returning_from, "prior": prior.to_json()}
    if returning.any():
        summary["returning"] = compare(
            spec,
            targets[returning],
            {name: values[returning] for name, values in contenders.items()},
            users[returning],
            bootstrap,
        )
    return by_bucket, summary
