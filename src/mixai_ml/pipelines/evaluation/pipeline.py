"""``evaluation``: one template per task namespace, then the promotion decision and report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import MASTER_REG, task_names, task_spec
from mixai_ml.pipelines.evaluation import nodes
from mixai_ml.pipelines.training import pipeline as training

SHARED_INPUTS = {
    "model_registry",
    "model_store",
    "world_oracle",
    "jobs",
    "ood_probe_features",
    "labels",
}


def task_template(task: str) -> Pipeline:
    """The nodes of one task, before namespacing: test predictions, the analyses the task
    has (its guard on known shifts; learning curves; per-user adapters if personalised; the
    multi-task head if it has a trunk), then its evaluation with all their blocks."""
    analyses = [
        node(
            nodes.guard_evaluation,
            inputs=[
                "trained_task",
                "model_input",
                "ood_probe_features",
                "labels",
                "params:evaluation",
            ],
            outputs="guard_evaluation",
            name="evaluate_guard",
        ),
        node(
            nodes.measure_label_efficiency,
            inputs=["trained_task", "model_input", "params:model", "params:evaluation"],
            outputs="label_efficiency",
            name="measure_label_efficiency",
        ),
    ]
    if task_spec(task).personalized:
        analyses.append(
            node(
                nodes.personalize,
                inputs=[
                    "trained_task",
                    "model_input",
                    "test_predictions",
                    "jobs",
                    "params:evaluation",
                ],
                outputs="personalization",
                name="evaluate_personalization",
            )
        )
    if training.in_trunk(task):
        analyses.append(
            node(
                nodes.compare_architectures,
                inputs=[
                    "single_task",
                    "multi_task",
                    "trained_task",
                    "model_input",
                    "params:evaluation",
                ],
                outputs="architectures",
                name="compare_architectures",
            )
        )
    return Pipeline(
        [
            node(
                nodes.predict_test_set,
                inputs=[
                    "trained_task",
                    "model_input",
                    "model_registry",
                    "model_store",
                    "world_oracle",
                ],
                outputs="test_predictions",
                name="predict_test_set",
            ),
            *analyses,
            node(
                nodes.evaluate,
                inputs=[
                    "test_predictions",
                    "trained_task",
                    "params:evaluation",
                    *(str(analysis.outputs[0]) for analysis in analyses),
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
                template,
                namespace=task,
                inputs=SHARED_INPUTS & template.inputs(),
                parameters={"params:evaluation"},
            )
            for task, template in ((task, task_template(task)) for task in tasks)
        ),
        Pipeline([]),
    )
    evaluations = [f"{task}.task_evaluation" for task in tasks]
    return per_task + Pipeline(
        [
            # the guard's known shifts: held-out audio made louder, duller, noisier, misread
            # (from the shared tables, not the tasks' model inputs: a node between two nodes
            # of a task's namespace would split it)
            node(
                nodes.probe_shifted_features,
                inputs=[
                    *training.SHARED_INPUTS,
                    "params:training.split",
                    "job_audio_files",
                    "params:evaluation.ood",
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
