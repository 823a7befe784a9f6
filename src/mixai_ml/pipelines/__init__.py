"""One sub-package per pipeline: ``nodes.py`` (thin) and ``pipeline.py``."""
