"""Thin Kedro nodes of the evaluation pipeline; the logic is in :mod:`mixai_ml.evaluation`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mixai_inference.tasks import MASTER_REG, task_names
from mixai_ml.evaluation import architectures, audio, plots, predictions, probes, promotion, report
from mixai_ml.evaluation.evaluate import evaluate_task
from mixai_ml.evaluation.label_efficiency import curve_settings, label_efficiency
from mixai_ml.evaluation.ood import evaluate_guard, ood_settings
from mixai_ml.export.store import ModelStore
from mixai_ml.parameters import settings_section
from mixai_ml.personalization.evaluate import evaluate_personalization
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.data import build_model_input


def predict_test_set(
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    model_registry: pd.DataFrame,
    model_store: ModelStore,
    world_oracle: pd.DataFrame,
) -> pd.DataFrame:
    return predictions.test_predictions(
        trained_task, model_input, model_registry, model_store, world_oracle
    )


def personalize(
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    test_predictions: pd.DataFrame,
    jobs: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Per-user adapters on the candidate, by the user's number of prior jobs."""
    return report.json_safe(
        evaluate_personalization(trained_task, model_input, test_predictions, jobs, params)
    )


def measure_label_efficiency(
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    model_params: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Learning curves from scratch and with transfer (when enabled and the task trained)."""
    enabled = curve_settings(params["learning_curve"])["enabled"]
    if not trained_task.trained or not enabled:
        return {}
    return report.json_safe(label_efficiency(trained_task.task, model_input, model_params, params))


def compare_architectures(
    single_task: TrainedTask,
    multi_task: TrainedTask,
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The task's own network against its multi-task head on the test users."""
    return report.json_safe(
        architectures.compare_architectures(
            single_task, multi_task, trained_task, model_input, params["bootstrap"]
        )
    )


def probe_shifted_features(
    features_store: pd.DataFrame,
    labels: pd.DataFrame,
    jobs: pd.DataFrame,
    ml_consent: pd.DataFrame,
    ml_exclusions: pd.DataFrame,
    split: dict[str, Any],
    job_audio_files: Mapping[str, Callable[[], Any]],
    params: dict[str, Any],
) -> pd.DataFrame:
    """Features of up to ``max_jobs`` held-out jobs under each known shift of their audio.

    The held-out jobs are the tasks' test jobs, drawn again from the shared tables as
    ``training`` draws them (``split``: ``training.split``), of users who still consent.
    """
    ood = ood_settings(params)
    model_inputs = [
        build_model_input(task, features_store, labels, jobs, ml_consent, ml_exclusions, split)[0]
        for task in task_names()
    ]
    held_out = probes.held_out_jobs(model_inputs, int(ood["max_jobs"]))
    return probes.probe_features(
        jobs, job_audio_files, held_out, ood["shifts"], ood.get("n_workers")
    )


def guard_evaluation(
    trained_task: TrainedTask,
    model_input: pd.DataFrame,
    ood_probe_features: pd.DataFrame,
    labels: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The evaluation of the task's out-of-distribution guard (the ``ood`` block)."""
    ood = evaluate_guard(trained_task, model_input, ood_probe_features, labels, params["ood"])
    return {"ood": ood}


def evaluate(
    test_predictions: pd.DataFrame,
    trained_task: TrainedTask,
    params: dict[str, Any],
    *analyses: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Figure]]:
    """The task's metrics, with the blocks of its other analyses, and its figures."""
    result = evaluate_task(test_predictions, trained_task, params)
    for analysis in analyses:
        result.update(analysis)
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
    settings = settings_section(params, "evaluation.audio", required=("max_jobs", "sources"))
    if not {"model_target_lufs", "rules_target_lufs"} & set(test_predictions.columns):
        return {}
    chosen = test_predictions.sort_values("job_id").head(int(settings["max_jobs"]))
    selected = jobs[jobs["job_id"].isin(chosen["job_id"])]
    mixes = {
        job: job_audio_files[path]
        for job, path in zip(selected["job_id"], selected["mix_path"], strict=True)
        if path in job_audio_files
    }
    errors = audio.audio_domain_errors(chosen, mixes, sources=settings["sources"])
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
