"""``export``: ONNX export with parity checks, registry rows and the deployable bundle."""
