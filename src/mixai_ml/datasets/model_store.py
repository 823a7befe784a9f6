"""``ModelStoreDataset``: the immutable store of exported ONNX models."""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from mixai_ml.datasets.folder import FolderDataset
from mixai_ml.export.store import ModelStore


class ModelStoreDataset(FolderDataset[Mapping[str, onnx.ModelProto | bytes], ModelStore]):
    """Saves ``{uri: onnx.ModelProto or bytes}`` into the store; loads a :class:`ModelStore`.

    Args:
        path: The store's folder, e.g. ``data/06_models/registry``.
    """

    def load(self) -> ModelStore:
        return ModelStore(self._path)

    def save(self, data: Mapping[str, onnx.ModelProto | bytes]) -> None:
        ModelStore(self._path).write(
            {
                uri: model if isinstance(model, bytes) else model.SerializeToString()
                for uri, model in data.items()
            }
        )
