"""``export``: per task ONNX export and parity; the edge graphs; then registry and bundle."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import task_names, task_spec
from mixai_ml.pipelines.export import nodes


def task_template() -> Pipeline:
    return Pipeline(
        [
            node(
                nodes.export_model,
                inputs=["trained_task", "model_input", "task_evaluation"],
                outputs=["onnx_store", "export_report"],
                name="export_model",
            )
        ]
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    tasks = task_names()
    personalised = [task for task in tasks if task_spec(task).personalized]
    per_task = sum((Pipeline(task_template(), namespace=task) for task in tasks), Pipeline([]))
    return per_task + Pipeline(
        [
            node(
                nodes.build_edge_graphs,
                inputs="params:export",
                outputs="edge_graphs",
                name="build_edge_graphs",
            ),
            node(
                nodes.register,
                inputs=[
                    "promotion_decision",
                    "model_registry",
                    *(f"{task}.export_report" for task in tasks),
                ],
                # the table, and in memory the registry the bundle is built from
                outputs=["model_registry_updates", "registry_after_export"],
                name="register_models",
            ),
            node(
                nodes.build_bundle,
                inputs=[
                    "registry_after_export",
                    "model_store",
                    "ml_feature_flags",
                    "ab_experiments",
                    "edge_graphs",
                    "params:export",
                    *(f"{task}.model_input" for task in personalised),
                ],
                outputs=["model_bundle", "bundle_summary"],
                name="publish_bundle",
            ),
        ]
    )
