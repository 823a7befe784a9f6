"""The immutable model store: every exported ONNX model and its training reference,
addressed by URIs.

A model's URI is ``<task>/<version>.onnx``, relative to the store's folder (the catalog's
``model_store``); ``model_registry.uri`` holds it. Its training reference
(:mod:`mixai_inference.ood`) is ``<task>/<version>.reference.json`` beside it. A stored
file is never replaced by different bytes: a version is its weights.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path


class ModelStore:
    """Reads and writes the store's files (see the module documentation).

    Args:
        root: The store's folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def uri(task: str, version: str) -> str:
        """The URI of a task's model version."""
        return f"{task}/{version}.onnx"

    @staticmethod
    def reference_uri(model_uri: str) -> str:
        """The URI of the training reference of the model at ``model_uri``."""
        return model_uri.removesuffix(".onnx") + ".reference.json"

    def read(self, uri: str, sha256: str | None = None) -> bytes:
        """The bytes of a stored model, checked against ``sha256`` when given.

        Raises:
            FileNotFoundError: If the store has no such file.
            ValueError: If the URI leaves the store or the bytes do not match ``sha256``.
        """
        path = self._path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"{uri}: the model store {self.root} has no such file")
        content = path.read_bytes()
        if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
            raise ValueError(f"{uri} no longer matches its registered sha256")
        return content

    def write(self, models: Mapping[str, bytes]) -> None:
        """Store each ``uri -> bytes`` (atomically); an identical file is left as it is.

        Raises:
            ValueError: If a URI is taken by different bytes (the store is immutable).
        """
        for uri, content in models.items():
            path = self._path(uri)
            if path.is_file():
                if path.read_bytes() != content:
                    raise ValueError(f"{uri} is already stored with other bytes")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{path.name}.tmp")
            staging.write_bytes(content)
            staging.replace(path)

    def _path(self, uri: str) -> Path:
        relative = Path(uri)
        if relative.is_absolute() or ".." in relative.parts or len(relative.parts) != 2:
            raise ValueError(f"{uri!r} is not a model store URI (<task>/<file>)")
        return self.root / relative
