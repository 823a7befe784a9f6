"""``monitoring``: latency, error, fallback and accuracy windows from ``model_metrics``."""

from mixai_ml.pipelines.monitoring.pipeline import create_pipeline

__all__ = ["create_pipeline"]
