"""Thin Kedro nodes of the evaluation pipeline; the logic is in :mod:`mixai_ml.evaluation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mixai_ml.evaluation import audio, plots, predictions, promotion, report
from mixai_ml.evaluation.evaluate import evaluate_task
from mixai_ml.paths import resolve
from mixai_ml.training.artifact import TrainedTask


def predict_test_set(
    trained_task: TrainedTask, model_input: pd.DataFrame, model_registry: pd.DataFrame
) -> pd.DataFrame:
    return predictions.test_predictions(trained_task, model_input, model_registry)


def evaluate(
    test_predictions: pd.DataFrame, trained_task: TrainedTask, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Figure]]:
    result = evaluate_task(test_predictions, trained_task, params)
    figures = plots.task_figures(result, test_predictions, trained_task.info.get("history"))
    return report.json_safe(result), figures


def evaluate_audio_domain(
    test_predictions: pd.DataFrame, jobs: pd.DataFrame, audio_root: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Render up to ``max_jobs`` test mixes with predicted and chosen parameters."""
    if not {"model_target_lufs", "rules_target_lufs"} & set(test_predictions.columns):
        return {}
    chosen = test_predictions.sort_values("job_id").head(int(params["max_jobs"]))
    root = resolve(audio_root)
    selected = jobs[jobs["job_id"].isin(chosen["job_id"])]
    mix_paths = {
        job: root / path for job, path in zip(selected["job_id"], selected["mix_path"], strict=True)
    }
    errors = audio.audio_domain_errors(chosen, mix_paths, sources=params["sources"])
    return report.json_safe(audio.summarise(errors)) if len(errors) else {}


def decide_promotions(
    master_reg: dict[str, Any],
    preset_cls: dict[str, Any],
    align_conf: dict[str, Any],
    policies: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The promotion decision of each task (the export pipeline applies it)."""
    decisions = {}
    for result in (master_reg, preset_cls, align_conf):
        task = result["task"]
        decision = promotion.decide(
            task,
            result["version"],
            result,
            promotion.PromotionPolicy(**policies.get(task, {})),
            result.get("active_version"),
        )
        decisions[task] = decision.to_dict()
    return decisions


def write_report(
    master_reg: dict[str, Any],
    preset_cls: dict[str, Any],
    align_conf: dict[str, Any],
    decisions: dict[str, Any],
    master_reg_audio: dict[str, Any],
    figures_folder: str,
) -> tuple[dict[str, Any], str]:
    """``evaluation_metrics.json`` and the Markdown report linking the task figures."""
    evaluations = {result["task"]: result for result in (master_reg, preset_cls, align_conf)}
    folder = resolve(figures_folder)
    figures = {
        task: [
            f"{Path(figures_folder).name}/{png.name}"
            for png in sorted(folder.glob(f"{task}_*.png"))
        ]
        for task in evaluations
    }
    content = report.metrics_file(evaluations, master_reg_audio)
    return content, report.markdown_report(evaluations, decisions, master_reg_audio, figures)
