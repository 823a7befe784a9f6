"""``evaluation``: one template per task namespace, then the promotion decision and report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import MASTER_REG, task_names
from mixai_ml.pipelines.evaluation import nodes


def task_template() -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.predict_test_set,
                inputs=["trained_task", "model_input", "model_registry", "model_store"],
                outputs="test_predictions",
                name="predict_test_set",
            ),
            node(
                nodes.evaluate,
                inputs=[
                    "test_predictions",
                    "trained_task",
                    "model_input",
                    "ood_probe_features",
                    "labels",
                    "params:evaluation",
                ],
                outputs=["task_evaluation", "evaluation_plots"],
                name="evaluate",
            ),
        ]
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    tasks = task_names()
    per_task = sum(
        (
            Pipeline(
                task_template(),
                namespace=task,
                inputs={"model_registry", "model_store", "ood_probe_features", "labels"},
                parameters={"params:evaluation"},
            )
            for task in tasks
        ),
        Pipeline([]),
    )
    evaluations = [f"{task}.task_evaluation" for task in tasks]
    return per_task + Pipeline(
        [
            # the guard's known shifts: held-out audio made louder, duller, noisier, misread
            node(
                nodes.probe_shifted_features,
                inputs=[
                    "jobs",
                    "job_audio_files",
                    "params:evaluation.ood",
                    *(f"{task}.model_input" for task in tasks),
                ],
                outputs="ood_probe_features",
                name="probe_shifted_features",
            ),
            # master_reg's parameters also judged by ear: rendered through the mastering chain
            node(
                nodes.evaluate_audio_domain,
                inputs=[
                    f"{MASTER_REG}.test_predictions",
                    "jobs",
                    "job_audio_files",
                    "params:evaluation.audio",
                ],
                outputs=f"{MASTER_REG}.audio_evaluation",
                name="evaluate_audio_domain",
            ),
            node(
                nodes.decide_promotions,
                inputs=["params:evaluation.promotion", *evaluations],
                outputs="promotion_decision",
                name="decide_promotions",
            ),
            node(
                nodes.write_report,
                inputs=["promotion_decision", f"{MASTER_REG}.audio_evaluation", *evaluations],
                outputs=["evaluation_metrics", "evaluation_report"],
                name="write_evaluation_report",
            ),
        ]
    )
