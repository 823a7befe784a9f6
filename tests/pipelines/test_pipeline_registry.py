"""The project's pipelines: every one registered, a missing one refused loudly."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline, node

from mixai_inference.tasks import trunks
from mixai_ml import pipeline_registry, quiet_known_warnings
from project_copy import PROJECT, kedro_in_this_process


@pytest.fixture(autouse=True)
def configured() -> Iterator[None]:
    with kedro_in_this_process():
        bootstrap_project(PROJECT)
        yield


def test_the_default_run_is_the_documented_sequence() -> None:
    pipelines = pipeline_registry.register_pipelines()
    assert {"demo_data", "purge", *pipeline_registry.DEFAULT_SEQUENCE} <= set(pipelines)
    default = {node.name for node in pipelines["__default__"].nodes}
    for name in pipeline_registry.DEFAULT_SEQUENCE:
        assert {node.name for node in pipelines[name].nodes} <= default


def test_a_missing_pipeline_stops_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    found = pipeline_registry.available_pipelines()
    assert set(pipeline_registry.DEFAULT_SEQUENCE) <= found
    renamed = {"scoring" if name == "evaluation" else name for name in found}
    monkeypatch.setattr(pipeline_registry, "available_pipelines", lambda: renamed)
    with pytest.raises(RuntimeError, match=r"needs the pipelines \['evaluation'\]"):
        pipeline_registry.register_pipelines()


def test_running_one_pipeline_loads_only_that_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``kedro run --pipelines=purge`` does: no default sequence, no error."""
    purge = pipeline_registry.find_pipelines(raise_errors=True)["purge"]
    monkeypatch.setattr(pipeline_registry, "find_pipelines", lambda **_: {"purge": purge})
    assert set(pipeline_registry.register_pipelines()) == {"purge"}


def identity(value: object) -> object:
    return value


def interruptions(always: bool) -> set[str]:
    """Kedro's "namespace interrupted" warnings while it builds every registered pipeline and
    a pipeline with a node outside namespace ``a`` between two of its nodes; ``always``
    bypasses the project's filters (:mod:`mixai_ml`)."""
    outside = [
        node(identity, "x", "a.y", name="first", namespace="a"),
        node(identity, "a.y", "z", name="between"),
        node(identity, "z", "a.w", name="last", namespace="a"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        if always:
            warnings.simplefilter("always")
        else:  # as on import (pytest resets the filters of each test)
            quiet_known_warnings()
        pipeline_registry.register_pipelines()
        Pipeline(outside)
    return {str(warning.message) for warning in caught if "is interrupted" in str(warning.message)}


def test_only_the_multitask_node_crosses_the_task_namespaces_and_only_it_is_quiet() -> None:
    """A trunk's multi-task node reads its tasks' run rows and feeds their choice, by design;
    no other node sits inside a task's path (the probe of shifted audio reads shared tables).
    The project hides that one warning, and Kedro still warns of any other."""
    other = "Namespace 'a' is interrupted by nodes ['between'] and thus invalid."
    assert interruptions(always=True) == {
        other,
        *(
            f"Namespace '{task}' is interrupted by nodes ['train_{trunk}_multitask'] and thus "
            "invalid."
            for trunk, tasks in trunks().items()
            for task in tasks
        ),
    }
    assert interruptions(always=False) == {other}
