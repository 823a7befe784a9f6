"""One task's evaluation: metrics of every contender and bootstrap CIs of the differences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pandas as pd

from mixai_inference.tasks import task_spec
from mixai_ml.evaluation.bootstrap import paired_bootstrap
from mixai_ml.evaluation.metrics import primary_metric_function, task_metrics
from mixai_ml.evaluation.predictions import contender_outputs, truth
from mixai_ml.evaluation.promotion import gain
from mixai_ml.parameters import settings_section
from mixai_ml.training.artifact import TrainedTask

EVALUATION_KEYS: Final = (
    "calibration_bins",
    "bootstrap",
    "audio",
    "promotion",
    "ood",
    "personalization",
    "learning_curve",
)
"""The sections of the ``evaluation`` parameters (each node reads its own)."""


def evaluate_task(
    predictions: pd.DataFrame, trained: TrainedTask, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Metrics of the model, the baselines and the active model on the held-out users.

    Args:
        predictions: output of :func:`mixai_ml.evaluation.predictions.test_predictions`.
        trained: the task's training result (status, version, history).
        params: ``bootstrap`` (``n_resamples``, ``confidence``, ``seed``) and
            ``calibration_bins``.

    Returns:
        ``status``, ``version``, ``n_test`` (jobs) and ``n_test_users``, one metrics
        block per contender (``model``, ``rules``, ``sklearn``, ``active``, ``oracle``),
        ``bootstrap``: for each baseline, the paired CI of model minus baseline on
        the primary metric (resampling users), and, with an oracle, ``gap_closed``: each
        contender's share of the way from the rules to the oracle.
    """
    params = settings_section(params, "evaluation", required=EVALUATION_KEYS)
    task = trained.task
    spec = task_spec(task)
    outputs = contender_outputs(predictions, spec)
    targets = truth(predictions, spec)
    bins = int(params["calibration_bins"])
    result: dict[str, Any] = {
        "task": task,
        "status": trained.status,
        "reason": trained.reason,
        "version": trained.version,
        "primary_metric": spec.primary_metric,
        "n_test": len(predictions),
        "n_test_users": int(predictions["user_id"].nunique()),
    }
    if predictions.empty:
        result["reason"] = result["reason"] or "no test users"
        return result
    for source, values in outputs.items():
        result[source] = task_metrics(spec, targets, values, bins)
    if {"oracle", "rules"} <= set(outputs):
        scores = {source: result[source][spec.primary_metric] for source in outputs}
        result["gap_closed"] = gap_closed(task, scores)
    if "active_version" in predictions:
        result["active_version"] = str(predictions["active_version"].iloc[0])
    if "model" in outputs:
        bootstrap = dict(params["bootstrap"])
        metric = primary_metric_function(spec)
        result["bootstrap"] = {
            f"model_minus_{baseline}": paired_bootstrap(
                targets,
                outputs["model"],
                outputs[baseline],
                metric,
                groups=predictions["user_id"].to_numpy(),
                **bootstrap,
            )
            for baseline in ("rules", "sklearn", "active")
            if baseline in outputs
        }
    return result


def gap_closed(task: str, scores: Mapping[str, float | None]) -> dict[str, float | None]:
    """Each contender's share of the primary metric's gap from the rules to the oracle
    (0: no better than the rules, 1: as good as the oracle; ``None`` when undefined).

    Args:
        task: the task (its metric's direction).
        scores: the primary metric of each contender, ``rules`` and ``oracle`` included.
    """
    spec = task_spec(task)
    rules, oracle = scores.get("rules"), scores.get("oracle")
    if rules is None or oracle is None or not gain(spec, oracle, rules) > 0:
        return {}
    return {
        source: None if score is None else gain(spec, score, rules) / gain(spec, oracle, rules)
        for source, score in scores.items()
        if source not in ("rules", "oracle")
    }
