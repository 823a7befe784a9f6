"""Test-set predictions of every contender: the model, the baselines, the active model."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS, PRESETS
from mixai_ml.paths import resolve
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.baselines import rules_predict, sklearn_predict
from mixai_ml.training.data import arrays, task_spec
from mixai_ml.training.models import predict

logger = logging.getLogger(__name__)

SOURCES = ("model", "sklearn", "rules", "active")


def output_names(task: str) -> tuple[str, ...]:
    """Names of a task's output columns (parameters, presets or the probability)."""
    if task == MASTER_REG:
        return MASTER_PARAM_NAMES
    if task == PRESET_CLS:
        return PRESETS
    return ("probability",)


def resolve_uri(uri: str) -> Path:
    """A registry URI (a path, relative to the project root unless absolute) as a path."""
    path = Path(uri.removeprefix("file://"))
    return resolve(path)


def active_model(model_registry: pd.DataFrame, task: str) -> pd.Series | None:
    """The registry row of the task's active model, if there is one."""
    rows = model_registry[(model_registry["task"] == task) & (model_registry["status"] == "active")]
    if rows.empty:
        return None
    return rows.sort_values("promoted_at", na_position="first").iloc[-1]


def run_onnx(path: Path, inputs: np.ndarray, expected_sha256: str | None = None) -> np.ndarray:
    """The first output of an ONNX model, after checking the file's sha256."""
    content = path.read_bytes()
    if expected_sha256 and hashlib.sha256(content).hexdigest() != expected_sha256:
        raise ValueError(f"{path} does not match its registered sha256")
    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {input_name: inputs})[0])


def _as_matrix(task: str, outputs: np.ndarray) -> np.ndarray:
    return outputs.reshape(len(outputs), len(output_names(task)))


def test_predictions(
    trained: TrainedTask, model_input: pd.DataFrame, model_registry: pd.DataFrame
) -> pd.DataFrame:
    """Predictions of the model, the scikit-learn baseline, the rules and the active model.

    Returns:
        One row per test job: ``job_id``, ``user_id``, the targets, and
        ``<source>_<output>`` for each source that could predict (the active
        model only when its file is present and intact).
    """
    task = trained.task
    spec = task_spec(task)
    test = model_input[model_input["split"] == "test"]
    inputs, _ = arrays(model_input, task, "test")
    frame = test[["job_id", "user_id", *spec.target_names]].reset_index(drop=True)
    if frame.empty:
        return frame
    contenders = {"rules": rules_predict(task, inputs)}
    if trained.trained and trained.model is not None:
        contenders["model"] = predict(trained.model, inputs)
        contenders["sklearn"] = sklearn_predict(task, trained.baseline, inputs)
    active = active_model(model_registry, task)
    if active is not None and active["version"] != trained.version:
        try:
            contenders["active"] = run_onnx(resolve_uri(active["uri"]), inputs, active["sha256"])
        except (OSError, ValueError, RuntimeError) as error:
            logger.warning("%s: active model %s not evaluated: %s", task, active["version"], error)
    names = output_names(task)
    for source, outputs in contenders.items():
        matrix = _as_matrix(task, np.asarray(outputs, dtype=np.float64))
        for column, name in enumerate(names):
            frame[f"{source}_{name}"] = matrix[:, column]
    if "active" in contenders and active is not None:
        frame["active_version"] = active["version"]
    return frame


def contender_outputs(frame: pd.DataFrame, task: str) -> dict[str, np.ndarray]:
    """``source -> outputs`` from a predictions frame (``(n, k)``, or ``(n,)`` for align_conf)."""
    names = output_names(task)
    outputs = {}
    for source in SOURCES:
        columns = [f"{source}_{name}" for name in names]
        if all(column in frame for column in columns):
            matrix = frame[columns].to_numpy(dtype=np.float64)
            outputs[source] = matrix[:, 0] if len(names) == 1 else matrix
    return outputs


def truth(frame: pd.DataFrame, task: str) -> np.ndarray:
    """The targets of a predictions frame (``(n, 8)`` or ``(n,)``)."""
    values = frame[list(task_spec(task).target_names)].to_numpy(dtype=np.float64)
    return values if task == MASTER_REG else values[:, 0]
