"""``evaluation``: one template per task namespace, then the promotion decision and report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import TASKS
from mixai_ml.pipelines.evaluation import nodes


def task_template() -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.predict_test_set,
                inputs=["trained_task", "model_input", "model_registry"],
                outputs="test_predictions",
                name="predict_test_set",
            ),
            node(
                nodes.evaluate,
                inputs=["test_predictions", "trained_task", "params:evaluation"],
                outputs=["task_evaluation", "evaluation_plots"],
                name="evaluate",
            ),
        ]
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    per_task = sum(
        (
            Pipeline(
                task_template(),
                namespace=task,
                inputs={"model_registry"},
                parameters={"params:evaluation"},
            )
            for task in TASKS
        ),
        Pipeline([]),
    )
    evaluations = [f"{task}.task_evaluation" for task in TASKS]
    return per_task + Pipeline(
        [
            node(
                nodes.evaluate_audio_domain,
                inputs=[
                    "master_reg.test_predictions",
                    "jobs",
                    "params:audio_root",
                    "params:evaluation.audio",
                ],
                outputs="master_reg.audio_evaluation",
                name="evaluate_audio_domain",
            ),
            node(
                nodes.decide_promotions,
                inputs=[*evaluations, "params:evaluation.promotion"],
                outputs="promotion_decision",
                name="decide_promotions",
            ),
            node(
                nodes.write_report,
                inputs=[
                    *evaluations,
                    "promotion_decision",
                    "master_reg.audio_evaluation",
                    "params:evaluation.figures_folder",
                ],
                outputs=["evaluation_metrics", "evaluation_report"],
                name="write_evaluation_report",
            ),
        ]
    )
