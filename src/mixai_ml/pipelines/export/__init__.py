"""``export``: ONNX export with parity checks, registry rows and the deployable bundle."""

from mixai_ml.pipelines.export.pipeline import create_pipeline

__all__ = ["create_pipeline"]
