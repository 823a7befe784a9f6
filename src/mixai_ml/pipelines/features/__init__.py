"""``features``: audio → feature vectors in the feature store (incremental)."""

from mixai_ml.pipelines.features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
