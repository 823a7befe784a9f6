"""Custom Kedro datasets of the project."""

from mixai_ml.datasets.bundle import BundleDataset
from mixai_ml.datasets.model_artifact import TrainedTaskDataset
from mixai_ml.datasets.onnx_model import OnnxModelDataset
from mixai_ml.datasets.sql import AppQueryDataset, AppTableDataset, DatabaseDataset

__all__ = [
    "AppQueryDataset",
    "AppTableDataset",
    "BundleDataset",
    "DatabaseDataset",
    "OnnxModelDataset",
    "TrainedTaskDataset",
]
