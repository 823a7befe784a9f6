"""Test-set predictions of every contender: the model, the baselines, the active model."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pandas as pd

from mixai_inference.tasks import TaskSpec, task_spec
from mixai_ml.export.store import ModelStore
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.baselines import rules_predict, sklearn_predict
from mixai_ml.training.data import arrays
from mixai_ml.training.models import predict

logger = logging.getLogger(__name__)

SOURCES = ("model", "sklearn", "rules", "active", "oracle")


def active_model(model_registry: pd.DataFrame, task: str) -> pd.Series | None:
    """The registry row of the task's active model, if there is one."""
    rows = model_registry[(model_registry["task"] == task) & (model_registry["status"] == "active")]
    if rows.empty:
        return None
    return rows.sort_values("promoted_at", na_position="first").iloc[-1]


def run_onnx(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """The first output of a serialised ONNX model on ``inputs``."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {input_name: inputs})[0])


def oracle_outputs(oracle: pd.DataFrame, task: str, job_ids: pd.Series) -> np.ndarray | None:
    """The world oracle's outputs ``(n, k)`` for ``job_ids``, or ``None`` unless it answers
    every one of them (outside the demo world there is no oracle).

    Args:
        oracle: ``job_id``, ``task``, ``outputs`` (a JSON list per row), as
            :func:`mixai_ml.simulation.oracle.oracle_table` writes it.
    """
    rows = oracle[oracle["task"] == task].drop_duplicates("job_id").set_index("job_id")
    if not job_ids.isin(rows.index).all():
        return None
    return np.array([json.loads(text) for text in rows.loc[job_ids, "outputs"]], dtype=np.float64)


def test_predictions(
    trained: TrainedTask,
    model_input: pd.DataFrame,
    model_registry: pd.DataFrame,
    model_store: ModelStore,
    oracle: pd.DataFrame,
) -> pd.DataFrame:
    """Predictions of the model, the scikit-learn baseline, the rules, the active model and,
    in the demo world, the oracle that knows the world's truth.

    Returns:
        One row per test job: ``job_id``, ``user_id``, the targets, and
        ``<source>_<output>`` for each source that could predict (the active
        model only when its file is present and intact; the oracle only when it answers
        every test job).
    """
    task = trained.task
    spec = task_spec(task)
    test = model_input[model_input["split"] == "test"]
    inputs, _ = arrays(model_input, task, "test")
    frame = test[["job_id", "user_id", *spec.targets]].reset_index(drop=True)
    if frame.empty:
        return frame
    contenders = {"rules": rules_predict(spec, inputs)}
    if trained.trained and trained.model is not None:
        contenders["model"] = predict(trained.model, inputs)
        contenders["sklearn"] = sklearn_predict(spec, trained.baseline, inputs)
    active = active_model(model_registry, task)
    if active is not None and active["version"] != trained.version:
        try:
            model = model_store.read(str(active["uri"]), str(active["sha256"]))
            contenders["active"] = run_onnx(model, inputs)
        except (OSError, ValueError, RuntimeError) as error:
            logger.warning("%s: active model %s not evaluated: %s", task, active["version"], error)
    limit = oracle_outputs(oracle, task, frame["job_id"])
    if limit is not None:
        contenders["oracle"] = limit
    for source, outputs in contenders.items():
        matrix = np.asarray(outputs, dtype=np.float64).reshape(len(inputs), len(spec.outputs))
        for column, name in enumerate(spec.outputs):
            frame[f"{source}_{name}"] = matrix[:, column]
    if "active" in contenders and active is not None:
        frame["active_version"] = active["version"]
    return frame


def contender_outputs(frame: pd.DataFrame, spec: TaskSpec) -> dict[str, np.ndarray]:
    """``source -> outputs`` from a predictions frame: ``(n, k)``, ``(n,)`` for a probability."""
    outputs = {}
    for source in SOURCES:
        columns = [f"{source}_{name}" for name in spec.outputs]
        if all(column in frame for column in columns):
            matrix = frame[columns].to_numpy(dtype=np.float64)
            outputs[source] = matrix[:, 0] if spec.kind == "probability" else matrix
    return outputs


def truth(frame: pd.DataFrame, spec: TaskSpec) -> np.ndarray:
    """The targets of a predictions frame: ``(n, k)`` for a regression, else ``(n,)``."""
    values = frame[list(spec.targets)].to_numpy(dtype=np.float64)
    return values if spec.kind == "regression" else values[:, 0]
