"""ONNX export: one self-contained file, metadata, and parity with PyTorch (or a loud failure)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_ml.export.onnx_export import ParityError, check_parity, to_onnx
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.models import NetConfig, Scaling, TabularNet


def trained_preset_model() -> tuple[TrainedTask, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = (rng.normal(size=(64, len(FEATURE_NAMES))) * 30 - 5).astype(np.float32)
    torch.manual_seed(0)
    model = TabularNet(NetConfig(len(FEATURE_NAMES), 6, "softmax", hidden=(16,), dropout=0.1))
    model.set_input_scaling(Scaling.fit(inputs))
    task = TrainedTask(
        "preset_cls",
        "succeeded",
        version="20260101000000-abcd1234",
        input_names=FEATURE_NAMES,
        model=model.eval(),
    )
    return task, inputs


@pytest.mark.slow
def test_export_carries_metadata_and_matches_torch() -> None:
    task, inputs = trained_preset_model()
    proto = to_onnx(task, {"macro_f1": 0.71})

    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert metadata["task"] == "preset_cls"
    assert metadata["version"] == task.version
    assert metadata["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    assert json.loads(metadata["output_names"])[0] == "natural"
    assert json.loads(metadata["metrics"]) == {"macro_f1": 0.71}
    assert (
        max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")) >= 18
    )
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer
    )
    report = check_parity(proto, task.model, inputs)  # type: ignore[arg-type]
    assert set(report["batches"]) == {"1", "7", "64"}
    assert report["max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_a_model_that_drifts_from_torch_fails_the_export_loudly() -> None:
    task, inputs = trained_preset_model()
    proto = to_onnx(task, {})
    weights = max(proto.graph.initializer, key=lambda init: np.prod(init.dims))
    values = numpy_helper.to_array(weights).copy()
    values += 0.05
    weights.CopyFrom(numpy_helper.from_array(values, weights.name))
    with pytest.raises(ParityError, match="not deployable"):
        check_parity(proto, task.model, inputs)  # type: ignore[arg-type]


def test_skipped_tasks_cannot_be_exported() -> None:
    with pytest.raises(ValueError, match="no trained model"):
        to_onnx(TrainedTask("master_reg", "skipped", reason="only 12 samples"), {})
