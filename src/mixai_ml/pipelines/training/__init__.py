"""``training``: governance-filtered inputs and each task's model."""

from mixai_ml.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
