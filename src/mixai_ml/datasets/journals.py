"""``ServiceJournalsDataset``: the folder of the inference service's journals (CONTRACTS §9)."""

from __future__ import annotations

from pathlib import Path

from kedro.io.core import DatasetError

from mixai_ml.datasets.folder import FolderDataset


class ServiceJournalsDataset(FolderDataset[None, Path]):
    """Loads the folder where ``mixai-serve`` leaves the rows the database could not take
    (its ``MIXAI_JOURNAL_DIR``); :mod:`mixai_ml.ingest` loads and deletes them. Read-only.

    Args:
        path: The journal folder (it may not exist yet: then there is nothing to load).
    """

    def load(self) -> Path:
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("the service's journals are written by mixai-serve, not by a pipeline")
