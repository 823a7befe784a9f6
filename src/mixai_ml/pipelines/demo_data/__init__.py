"""``demo_data``: the synthetic MIXAI world (audio, application tables, ground truth)."""

from mixai_ml.pipelines.demo_data.pipeline import create_pipeline

__all__ = ["create_pipeline"]
