"""Edge inference: the feature extraction of ``mixai_inference`` as ONNX graphs for browsers."""
