"""``EdgeGraphsDataset``: the ONNX graphs the browser runs (features.onnx, alignment.onnx)."""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from mixai_inference._atomic import write_synced
from mixai_ml.datasets.folder import FolderDataset
from mixai_ml.edge import EDGE_GRAPH_FILES


class EdgeGraphsDataset(FolderDataset[Mapping[str, onnx.ModelProto], dict[str, bytes]]):
    """Saves ``{name: ModelProto}`` as the graphs' files (:data:`EDGE_GRAPH_FILES`); loads
    ``{name: bytes}`` of the graphs present.

    Args:
        path: The folder, e.g. ``data/06_models/edge``.
    """

    def load(self) -> dict[str, bytes]:
        return {
            name: (self._path / file).read_bytes()
            for name, file in EDGE_GRAPH_FILES.items()
            if (self._path / file).is_file()
        }

    def save(self, data: Mapping[str, onnx.ModelProto]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        for name, model in data.items():
            write_synced(self._path / EDGE_GRAPH_FILES[name], model.SerializeToString())
