"""``features``: audio → feature vectors in the feature store (incremental)."""
