"""Custom Kedro datasets of the project.

Imported on first use (PEP 562): a pipeline that only reads the database does not pay for
importing torch and onnx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_MODULE_OF = {
    "AppQueryDataset": "sql",
    "AppTableDataset": "sql",
    "AudioDataset": "audio",
    "AudioFolderDataset": "audio",
    "BundleDataset": "bundle",
    "DatabaseDataset": "sql",
    "EdgeGraphsDataset": "edge",
    "PersonalFilesDataset": "personal_files",
    "ServiceJournalsDataset": "journals",
    "ModelStoreDataset": "model_store",
    "OptionalParquetDataset": "optional",
    "TrainedTaskDataset": "model_artifact",
}
__all__ = [
    "AppQueryDataset",
    "AppTableDataset",
    "AudioDataset",
    "AudioFolderDataset",
    "BundleDataset",
    "DatabaseDataset",
    "EdgeGraphsDataset",
    "ModelStoreDataset",
    "OptionalParquetDataset",
    "PersonalFilesDataset",
    "ServiceJournalsDataset",
    "TrainedTaskDataset",
]

if TYPE_CHECKING:
    from mixai_ml.datasets.audio import AudioDataset, AudioFolderDataset
    from mixai_ml.datasets.bundle import BundleDataset
    from mixai_ml.datasets.edge import EdgeGraphsDataset
    from mixai_ml.datasets.journals import ServiceJournalsDataset
    from mixai_ml.datasets.model_artifact import TrainedTaskDataset
    from mixai_ml.datasets.model_store import ModelStoreDataset
    from mixai_ml.datasets.optional import OptionalParquetDataset
    from mixai_ml.datasets.personal_files import PersonalFilesDataset
    from mixai_ml.datasets.sql import AppQueryDataset, AppTableDataset, DatabaseDataset


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
