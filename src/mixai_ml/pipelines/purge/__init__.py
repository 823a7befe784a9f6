"""``purge``: delete the ML data of users who withdrew consent (legal holds kept)."""

from mixai_ml.pipelines.purge.pipeline import create_pipeline

__all__ = ["create_pipeline"]
