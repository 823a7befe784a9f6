"""Model training: inputs, PyTorch models, baselines, runs."""
