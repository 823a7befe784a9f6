"""``ab_analysis``: statistics and decisions of every experiment in ``ab_test_assignments``."""

from mixai_ml.pipelines.ab_analysis.pipeline import create_pipeline

__all__ = ["create_pipeline"]
