"""``TrainedTaskDataset``: a trained task as a folder of plain files."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import joblib
import torch
from kedro.io.core import DatasetError

from mixai_inference.ood import InputReference
from mixai_ml.datasets.folder import FolderDataset
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.models import NetConfig, TabularNet

_RECORD = "trained_task.json"
_WEIGHTS = "model_state.pt"
_BASELINE = "sklearn_baseline.joblib"
_REFERENCE = "input_reference.json"


class TrainedTaskDataset(FolderDataset[TrainedTask, TrainedTask]):
    """Saves a :class:`TrainedTask` as ``trained_task.json`` (record and network shape),
    ``model_state.pt`` (weights only, loaded with ``weights_only=True``),
    ``sklearn_baseline.joblib`` and ``input_reference.json`` (the training reference).
    The folder is replaced atomically.

    Args:
        path: the folder, e.g. ``data/06_models/master_reg``.
    """

    marker = _RECORD

    def load(self) -> TrainedTask:
        record_path = self._path / _RECORD
        if not record_path.is_file():
            raise DatasetError(
                f"no trained task at {self._path}: run `kedro run --pipelines=training` first"
            )
        record = json.loads(record_path.read_text())
        trained = TrainedTask(
            task=record["task"],
            status=record["status"],
            version=record["version"],
            reason=record["reason"],
            input_names=tuple(record["input_names"]),
            info=record["info"],
        )
        if record.get("net") is not None:
            config = NetConfig(**{**record["net"], "hidden": tuple(record["net"]["hidden"])})
            model = TabularNet(config)
            state = torch.load(self._path / _WEIGHTS, weights_only=True)
            model.load_state_dict(state)
            trained.model = model.eval()
        if (self._path / _BASELINE).is_file():
            trained.baseline = joblib.load(self._path / _BASELINE)
        if (self._path / _REFERENCE).is_file():
            trained.reference = InputReference.from_bytes((self._path / _REFERENCE).read_bytes())
        return trained

    def save(self, data: TrainedTask) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self._path.name}-", dir=self._path.parent))
        try:
            record = {
                "task": data.task,
                "status": data.status,
                "version": data.version,
                "reason": data.reason,
                "input_names": list(data.input_names),
                "net": data.model.config.to_dict() if data.model is not None else None,
                "info": data.info,
            }
            (staging / _RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
            if data.model is not None:
                torch.save(data.model.state_dict(), staging / _WEIGHTS)
            if data.baseline is not None:
                joblib.dump(data.baseline, staging / _BASELINE)
            if data.reference is not None:
                (staging / _REFERENCE).write_bytes(data.reference.to_bytes())
            backup = self._path.with_name(f".{self._path.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            if self._path.exists():
                self._path.rename(backup)
            staging.rename(self._path)
            shutil.rmtree(backup, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
