"""``training``: one template, namespaced per registered task (:mod:`mixai_inference.tasks`),
and one multi-task network per shared trunk (:attr:`TaskSpec.trunk
<mixai_inference.tasks.TaskSpec.trunk>`).

Run one task alone with ``kedro run --pipelines=training --namespaces=master_reg``. A task of a
trunk then keeps its own network: the stored multi-task head is from another run
(:func:`mixai_ml.training.runs.choose_candidate`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import task_names, trunks
from mixai_ml.pipelines.training import nodes

SHARED_INPUTS = ["features_store", "labels", "jobs", "ml_consent", "ml_exclusions"]


def for_task(function: Callable[..., Any], task: str) -> Callable[..., Any]:
    """``function`` with its ``task`` keyword bound, under its own name in Kedro's logs."""

    def bound(*args: Any) -> Any:
        return function(*args, task=task)

    bound.__name__ = bound.__qualname__ = function.__name__
    bound.__doc__ = function.__doc__
    return bound


def in_trunk(task: str) -> bool:
    """Whether ``task`` also trains as a head of a multi-task network."""
    return any(task in members for members in trunks().values())


def task_template(task: str) -> Pipeline:
    """The nodes of one task, before namespacing."""
    if in_trunk(task):  # its own network, then the better of it and its multi-task head
        # (the training reference is fitted once, for the chosen network)
        training = [
            node(
                for_task(nodes.train_single, task),
                inputs=["model_input", "training_job", "params:model"],
                outputs="single_task",
                name="train",
            ),
            node(
                for_task(nodes.choose_candidate, task),
                inputs=[
                    "single_task",
                    "multi_task",
                    "model_input",
                    "training_job",
                    "params:training.reference",
                ],
                outputs=["trained_task", "training_job_finished"],
                name="choose_candidate",
            ),
        ]
    else:
        training = [
            node(
                for_task(nodes.train, task),
                inputs=["model_input", "training_job", "params:model", "params:training.reference"],
                outputs=["trained_task", "training_job_finished"],
                name="train",
            )
        ]
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
            *training,
        ]
    )


def multitask_node(trunk: str, tasks: tuple[str, ...]) -> Any:
    """The node training ``trunk``'s multi-task network from its tasks' inputs."""
    train = functools.partial(nodes.train_multitask, trunk=trunk, tasks=tasks)
    functools.update_wrapper(train, nodes.train_multitask)
    # the tasks' inputs rebuilt from the shared tables; only each task's run row comes from its
    # namespace, to stamp the heads with their run (the one "namespace interrupted" warning that
    # mixai_ml.QUIET_WARNINGS hides)
    return node(
        train,
        inputs=[
            *SHARED_INPUTS,
            "params:training.split",
            "params:training.min_samples",
            "params:multitask",
            *(f"{task}.training_job" for task in tasks),
        ],
        outputs=[f"{task}.multi_task" for task in tasks],
        name=f"train_{trunk}_multitask",
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    per_task = sum(
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
    return per_task + Pipeline([multitask_node(trunk, tasks) for trunk, tasks in trunks().items()])
