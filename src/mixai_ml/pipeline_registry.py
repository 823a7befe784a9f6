"""Project pipelines (docs/pipelines.md)."""

from __future__ import annotations

import pkgutil

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from mixai_ml import pipelines as pipeline_packages

DEFAULT_SEQUENCE = ("features", "training", "evaluation", "export", "ab_analysis", "monitoring")
"""What ``kedro run`` runs; the others (``demo_data``, ``purge``) are run by name."""


def available_pipelines() -> set[str]:
    """The pipeline packages under ``mixai_ml/pipelines/``."""
    return {module.name for module in pkgutil.iter_modules(pipeline_packages.__path__)}


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline under ``pipelines/`` and the default sequence.

    ``kedro run --pipelines=<name>`` loads only the pipelines it runs; the default sequence is
    built when all of them are loaded.

    Raises:
        RuntimeError: If a pipeline of the default sequence is missing (e.g. renamed).
    """
    available = available_pipelines()
    missing = [name for name in DEFAULT_SEQUENCE if name not in available]
    if missing:
        raise RuntimeError(
            f"the default run needs the pipelines {missing}, which are not under "
            f"mixai_ml/pipelines/ (found {sorted(available)}); restore them or change "
            "DEFAULT_SEQUENCE in mixai_ml/pipeline_registry.py"
        )
    pipelines = find_pipelines(raise_errors=True)
    if all(name in pipelines for name in DEFAULT_SEQUENCE):
        pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT_SEQUENCE), Pipeline([]))
    return pipelines
