"""Thin Kedro nodes of the evaluation pipeline; the logic is in :mod:`mixai_ml.evaluation`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mixai_inference.tasks import MASTER_REG
from mixai_ml.evaluation import audio, plots, predictions, probes, promotion, report
from mixai_ml.evaluation.evaluate import evaluate_task
from mixai_ml.evaluation.ood import evaluate_guard
from mixai_ml.export.store import ModelStore
from mixai_ml.training.artifact import TrainedTask


def predict_test_set(
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    model_registry: pd.DataFrame,
    model_store: ModelStore,
) -> pd.DataFrame:
    return predictions.test_predictions(trained_task, model_input, model_registry, model_store)


def probe_shifted_features(
    jobs: pd.DataFrame,
    job_audio_files: Mapping[str, Callable[[], Any]],
    params: dict[str, Any],
    *model_inputs: pd.DataFrame,
) -> pd.DataFrame:
    """Features of up to ``max_jobs`` held-out jobs under each known shift of their audio."""
    held_out = probes.held_out_jobs(model_inputs, int(params["max_jobs"]))
    return probes.probe_features(
        jobs, job_audio_files, held_out, params["shifts"], params.get("n_workers")
    )


def evaluate(
    test_predictions: pd.DataFrame,
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    ood_probe_features: pd.DataFrame,
    labels: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Figure]]:
    """The task's metrics against its contenders, and the evaluation of its guard (``ood``)."""
    result = evaluate_task(test_predictions, trained_task, params)
    result["ood"] = evaluate_guard(
        trained_task, model_input, ood_probe_features, labels, params["ood"]
    )
    result = report.json_safe(result)
    figures = plots.task_figures(result, test_predictions, trained_task.info.get("history"))
    return result, figures


def evaluate_audio_domain(
    test_predictions: pd.DataFrame,
    jobs: pd.DataFrame,
    job_audio_files: Mapping[str, Callable[[], Any]],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Render up to ``max_jobs`` master_reg test mixes with predicted and chosen parameters."""
    if not {"model_target_lufs", "rules_target_lufs"} & set(test_predictions.columns):
        return {}
    chosen = test_predictions.sort_values("job_id").head(int(params["max_jobs"]))
    selected = jobs[jobs["job_id"].isin(chosen["job_id"])]
    mixes = {
        job: job_audio_files[path]
        for job, path in zip(selected["job_id"], selected["mix_path"], strict=True)
        if path in job_audio_files
    }
    errors = audio.audio_domain_errors(chosen, mixes, sources=params["sources"])
    return report.json_safe(audio.summarise(errors)) if len(errors) else {}


def decide_promotions(
    policies: dict[str, dict[str, Any]], *evaluations: dict[str, Any]
) -> dict[str, Any]:
    """The promotion decision of each task (the export pipeline applies it)."""
    decisions = {}
    for result in evaluations:
        task = result["task"]
        decision = promotion.decide(
            task,
            result["version"],
            result,
            promotion.PromotionPolicy(**policies[task]),
            result.get("active_version"),
        )
        decisions[task] = decision.to_dict()
    return decisions


def write_report(
    decisions: dict[str, Any], master_reg_audio: dict[str, Any], *evaluations: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """``evaluation_metrics.json`` and the Markdown report linking the task figures."""
    by_task = {result["task"]: result for result in evaluations}
    audio_domain = {MASTER_REG: master_reg_audio}
    figures = {task: plots.figure_names(result) for task, result in by_task.items()}
    content = report.metrics_file(by_task, audio_domain)
    return content, report.markdown_report(by_task, decisions, audio_domain, figures)
