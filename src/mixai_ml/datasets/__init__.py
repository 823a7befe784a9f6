"""Custom Kedro datasets of the project."""

from mixai_ml.datasets.audio import AudioDataset, AudioFolderDataset
from mixai_ml.datasets.bundle import BundleDataset
from mixai_ml.datasets.derived import DerivedFilesDataset
from mixai_ml.datasets.edge import EdgeGraphsDataset
from mixai_ml.datasets.journals import ServiceJournalsDataset
from mixai_ml.datasets.model_artifact import TrainedTaskDataset
from mixai_ml.datasets.model_store import ModelStoreDataset
from mixai_ml.datasets.sql import AppQueryDataset, AppTableDataset, DatabaseDataset

__all__ = [
    "AppQueryDataset",
    "AppTableDataset",
    "AudioDataset",
    "AudioFolderDataset",
    "BundleDataset",
    "DatabaseDataset",
    "DerivedFilesDataset",
    "EdgeGraphsDataset",
    "ModelStoreDataset",
    "ServiceJournalsDataset",
    "TrainedTaskDataset",
]
