"""The project's pipelines: every one registered, a missing one refused loudly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kedro.framework.startup import bootstrap_project

from mixai_ml import pipeline_registry
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
