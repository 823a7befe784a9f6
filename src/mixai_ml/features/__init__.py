"""Feature extraction at scale (the features themselves live in :mod:`mixai_inference`)."""
