"""``ingest``: the service's leftover journals into ``model_metrics`` / ``ab_test_assignments``."""

from mixai_ml.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
