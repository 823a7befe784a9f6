"""Project pipelines (CONTRACTS §2)."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

DEFAULT_SEQUENCE = ("features", "training", "evaluation", "export", "ab_analysis", "monitoring")
"""What ``kedro run`` runs; ``demo_data`` and ``purge`` are run by name."""


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline under ``pipelines/`` and the default sequence."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_SEQUENCE if name in pipelines), Pipeline([])
    )
    return pipelines
