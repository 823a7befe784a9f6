"""``export``: per task ONNX export and parity; then registry and bundle."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import TASKS
from mixai_ml.pipelines.export import nodes


def task_template() -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.export_model,
                inputs=[
                    "trained_task",
                    "model_input",
                    "task_evaluation",
                    "params:export.store_folder",
                ],
                outputs=["onnx_store", "export_report"],
                name="export_model",
            )
        ]
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    per_task = sum(
        (
            Pipeline(task_template(), namespace=task, parameters={"params:export.store_folder"})
            for task in TASKS
        ),
        Pipeline([]),
    )
    return per_task + Pipeline(
        [
            node(
                nodes.publish,
                inputs=[
                    *(f"{task}.export_report" for task in TASKS),
                    "promotion_decision",
                    "model_registry",
                    "params:export",
                ],
                outputs=["model_registry_updates", "model_bundle", "bundle_summary"],
                name="publish_bundle",
            )
        ]
    )
