"""Custom Kedro datasets of the project."""

from mixai_ml.datasets.audio import AudioDataset
from mixai_ml.datasets.bundle import BundleDataset
from mixai_ml.datasets.model_artifact import TrainedTaskDataset
from mixai_ml.datasets.onnx_model import OnnxModelDataset
from mixai_ml.datasets.sql import AppQueryDataset, AppTableDataset, DatabaseDataset

__all__ = [
    "AppQueryDataset",
    "AppTableDataset",
    "AudioDataset",
    "BundleDataset",
    "DatabaseDataset",
    "OnnxModelDataset",
    "TrainedTaskDataset",
]
