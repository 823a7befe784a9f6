"""``evaluation``: held-out metrics against the baselines and the active model; promotion."""

from mixai_ml.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
