"""``FolderDataset``: the common shape of the project's datasets that live in one folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from kedro.io.core import AbstractDataset

_Saved = TypeVar("_Saved")
_Loaded = TypeVar("_Loaded")


class FolderDataset(AbstractDataset[_Saved, _Loaded]):
    """A dataset kept in the folder ``path``; it exists when :attr:`marker` (a file in the
    folder) does, or, without a marker, when the folder does.

    Args:
        path: The folder (relative paths are made absolute by Kedro's catalog).
        metadata: Free-form metadata, ignored by Kedro.
    """

    marker: str | None = None

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        if self.marker is None:
            return self._path.is_dir()
        return (self._path / self.marker).is_file()
