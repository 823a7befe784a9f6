"""PyTorch → ONNX: one self-contained file per model, checked and proven equal to torch."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.tasks import task_spec
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.models import TabularNet

logger = logging.getLogger(__name__)

OPSET = 18
PARITY_BATCH_SIZES = (1, 7, 64)
PARITY_ATOL = 1e-5


class ParityError(RuntimeError):
    """The ONNX model does not reproduce the PyTorch model."""


def to_onnx(
    trained: TrainedTask, metrics: Mapping[str, Any], opset: int = OPSET
) -> onnx.ModelProto:
    """Export a trained task's model with a dynamic batch axis and its metadata.

    The graph takes ``features`` float32 ``(batch, n_inputs)``; standardisation,
    the task head and calibration are inside it. ``metadata_props`` carry
    ``task``, ``version``, ``feature_schema_version``, ``output_names`` and
    ``metrics`` (docs/data_contracts.md §7). The result passes ``onnx.checker`` with
    ``full_check`` (shape inference included).
    """
    if not trained.trained or trained.model is None:
        raise ValueError(f"{trained.task} has no trained model to export ({trained.reason})")
    spec = task_spec(trained.task)
    model = trained.model.eval()
    example = torch.zeros(2, model.config.n_inputs)
    with warnings.catch_warnings():
        # torch.export's own deprecation, not ours
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec", category=FutureWarning)
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[spec.input_tensor],
            output_names=[spec.output_tensor],
            opset_version=opset,
            dynamic_shapes={"features": {0: torch.export.Dim("batch")}},
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    metadata = {
        "task": trained.task,
        "version": trained.version,
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "output_names": json.dumps(list(spec.outputs)),
        "metrics": json.dumps(metrics, sort_keys=True),
        "input_names": json.dumps(list(trained.input_names)),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_parity(
    proto: onnx.ModelProto,
    model: TabularNet,
    inputs: np.ndarray,
    batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """Compare onnxruntime with PyTorch on held-out inputs at several batch sizes.

    Raises:
        ParityError: if any output differs by more than ``atol`` or, for
            multi-class outputs, any argmax differs.

    Returns:
        Per batch size the maximum absolute difference, and the overall maximum.
    """
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    report: dict[str, Any] = {"atol": atol, "batches": {}}
    model.eval()
    for size in batch_sizes:
        batch = np.resize(inputs, (size, inputs.shape[1])).astype(np.float32)
        expected = model(torch.from_numpy(batch)).detach().numpy()
        actual = session.run(None, {input_name: batch})[0]
        difference = float(np.max(np.abs(actual - expected)))
        same_argmax = expected.shape[1] == 1 or bool(
            np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
        )
        report["batches"][str(size)] = {"max_abs_diff": difference, "same_argmax": same_argmax}
        if not (difference <= atol and same_argmax):
            raise ParityError(
                f"ONNX and PyTorch disagree at batch size {size}: max |diff| {difference:.2e} "
                f"(allowed {atol:.0e}), same argmax: {same_argmax}. The export is not deployable."
            )
    report["max_abs_diff"] = max(entry["max_abs_diff"] for entry in report["batches"].values())
    return report
