"""``OnnxModelDataset``: one self-contained ONNX file (no external data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from kedro.io.core import AbstractDataset


class OnnxModelDataset(AbstractDataset[onnx.ModelProto | bytes, onnx.ModelProto]):
    """Saves an ``onnx.ModelProto`` (or its serialised bytes) to ``filepath``; loads a ModelProto.

    Args:
        filepath: the ``.onnx`` file.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def load(self) -> onnx.ModelProto:
        return onnx.load_from_string(self._filepath.read_bytes())

    def save(self, data: onnx.ModelProto | bytes) -> None:
        content = data if isinstance(data, bytes) else data.SerializeToString()
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        staging = self._filepath.with_name(f".{self._filepath.name}.tmp")
        staging.write_bytes(content)
        staging.replace(self._filepath)
