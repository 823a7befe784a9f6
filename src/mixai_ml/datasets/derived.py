"""``DerivedFilesDataset``: the derived training data the purge rewrites."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from mixai_inference.tasks import task_names


class DerivedFilesDataset(AbstractDataset[None, tuple[Path, ...]]):
    """Files made from users' data, the purge's list of places besides the tables: Parquet
    files with a ``job_id`` column, and the bundle's per-user adapters
    (``user_adapters.json``); loads the existing ones.

    Args:
        files: name -> ``{"filepath": ...}`` of each kind of file (the same locations as
            the datasets that write them, through ``globals.yml``); ``{task}`` in a
            path stands for every registered task.
    """

    def __init__(
        self, *, files: Mapping[str, Mapping[str, str]], metadata: dict[str, Any] | None = None
    ) -> None:
        self._templates = {name: str(entry["filepath"]) for name, entry in files.items()}
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"files": self._templates}

    def load(self) -> tuple[Path, ...]:
        paths = {
            Path(template.replace("{task}", task))
            for template in self._templates.values()
            for task in task_names()
        }
        return tuple(sorted(path for path in paths if path.is_file()))

    def save(self, data: None) -> None:
        raise DatasetError("DerivedFilesDataset is read-only: the purge rewrites the files")
