"""``training``: one template, namespaced per registered task (:mod:`mixai_inference.tasks`).

Run one task alone with ``kedro run --pipelines=training --namespaces=master_reg``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import task_names
from mixai_ml.pipelines.training import nodes

SHARED_INPUTS = ["features_store", "labels", "jobs", "ml_consent", "ml_exclusions"]


def for_task(function: Callable[..., Any], task: str) -> Callable[..., Any]:
    """``function`` with its ``task`` keyword bound, under its own name in Kedro's logs."""

    def bound(*args: Any) -> Any:
        return function(*args, task=task)

    bound.__name__ = bound.__qualname__ = function.__name__
    bound.__doc__ = function.__doc__
    return bound


def task_template(task: str) -> Pipeline:
    """The nodes of one task, before namespacing."""
    return Pipeline(
        [
            node(
                for_task(nodes.select_training_data, task),
                inputs=[*SHARED_INPUTS, "params:training.split"],
                outputs=["model_input", "governance"],
                name="select_training_data",
            ),
            node(
                for_task(nodes.start_training_job, task),
                inputs=[
                    "model_input",
                    "governance",
                    "params:training.min_samples",
                    "params:training.queued",
                ],
                # the row goes to the table and, in memory, to this run's `train`
                outputs=["training_job", "training_job_started"],
                name="start_training_job",
            ),
            node(
                for_task(nodes.train, task),
                inputs=["model_input", "training_job", "params:model", "params:training.reference"],
                outputs=["trained_task", "training_job_finished"],
                name="train",
            ),
        ]
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    return sum(
        (
            Pipeline(
                task_template(task),
                namespace=task,
                inputs=set(SHARED_INPUTS),
                parameters={
                    "params:training.split",
                    "params:training.min_samples",
                    "params:training.reference",
                    "params:training.queued",
                },
            )
            for task in task_names()
        ),
        Pipeline([]),
    )
