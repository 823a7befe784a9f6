"""ONNX export, the model registry and the bundle."""
