"""Tiny ONNX models and bundles for the runtime tests (``onnx`` is a test dependency only).

Each model is ``output = features @ weight + bias`` (MatMul + Add) with the contract's
I/O names; with ``weight = 0`` the output is the bias, so every version's answer is
identifiable. Feature names are small fakes: the names the rules read plus a few
others (the tests never depend on the package's real feature count).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mixai_inference.adapters import ADAPTERS_FILE, AdapterFile, UserAdapters
from mixai_inference.bundle import (
    Experiment,
    Manifest,
    ModelEntry,
    TaskEntry,
    sha256_bytes,
    write_bundle,
)
from mixai_inference.metrics import MetricsSink
from mixai_inference.predictor import Predictor
from mixai_inference.rules import ALIGN_INPUTS, TRACK_INPUTS, Rules
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    task_spec,
)

SCHEMA = "test-schema-1"
FEATURE_NAMES = (
    *(spec.name for spec in TRACK_INPUTS.values()),
    "mfcc_00_mean",
    "chroma_03_max",
)
ALIGN_NAMES = (*(spec.name for spec in ALIGN_INPUTS.values()), "xcorr_peak_value")
RULES = Rules(FEATURE_NAMES, ALIGN_NAMES)
INPUT_DIMS = {
    MASTER_REG: len(FEATURE_NAMES),
    PRESET_CLS: len(FEATURE_NAMES),
    ALIGN_CONF: len(ALIGN_NAMES),
}


def open_bundle(path: Path, **kwargs: Any) -> Predictor:
    """A predictor on a bundle of this module's fake feature names, recording in memory."""
    kwargs.setdefault("metrics_sink", MetricsSink())
    return Predictor.from_bundle(path, rules=RULES, feature_schema_version=SCHEMA, **kwargs)


def typical_features(names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """A finite feature vector: every rule input at its typical value, the rest 0."""
    values = dict.fromkeys(names, 0.0)
    values.update(
        {spec.name: spec.typical for spec in TRACK_INPUTS.values() if spec.name in values}
    )
    return np.array([values[name] for name in names], dtype=np.float32)


def feature_scales(names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """A spread per feature: a tenth of its typical value, at least 1."""
    return np.maximum(np.abs(typical_features(names)) * 0.1, 1.0).astype(np.float32)


def training_rows(n: int, seed: int = 0, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """``n`` in-distribution feature vectors: typical values plus Gaussian noise of
    :func:`feature_scales`, with two features correlated (as real ones are)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, len(names)))
    noise[:, -1] = 0.9 * noise[:, -2] + np.sqrt(1 - 0.81) * noise[:, -1]
    return (typical_features(names) + noise * feature_scales(names)).astype(np.float32)


def reference_for(
    task: str,
    n: int = 600,
    alpha: float = 0.01,
    seed: int = 0,
    names: Sequence[str] = FEATURE_NAMES,
) -> bytes:
    """The training reference file of ``task``'s models fitted on :func:`training_rows`
    (30 users) of the features ``names``, the way the training pipeline fits one."""
    from mixai_ml.training.reference import fit_reference

    spec = task_spec(task)
    if spec.source != "mix":
        raise ValueError("the fake references cover the mix tasks")
    rows = training_rows(n, seed, names)
    outputs = np.tile(default_bias(task, 0), (n, 1))
    params = {
        "target_false_alarm_rate": alpha,
        "folds": 5,
        "trim": 0.05,
        "components": {"minor": 3, "major": 2},
    }
    users = [f"u{i % 30}" for i in range(n)]
    reference = fit_reference(rows, outputs, users, tuple(names), spec.outputs, params)
    return reference.to_bytes()


def master_bias(k: int) -> np.ndarray:
    """Parameters that identify version ``k``: ``target_lufs = -19.5 + 0.5 k`` (k < 27)."""
    mid = np.array([(lo + hi) / 2 for lo, hi in MASTER_PARAM_RANGES.values()])
    mid[0] = -19.5 + 0.5 * k
    return mid


def preset_bias(k: int) -> np.ndarray:
    """A distribution that identifies version ``k``: ``p[0] = 0.05 + 0.01 k`` (k < 40)."""
    p = np.full(6, 0.0)
    p[0] = 0.05 + 0.01 * k
    p[1:] = (1.0 - p[0]) / 5
    return p


def affine_model(
    task: str,
    version: str,
    bias: Sequence[float],
    *,
    input_dim: int | None = None,
    weight: np.ndarray | None = None,
    schema: str = SCHEMA,
    metadata: Mapping[str, str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
) -> bytes:
    """A serialized ONNX model ``output = features @ weight + bias`` of ``task``."""
    spec = task_spec(task)
    dim = INPUT_DIMS[task] if input_dim is None else input_dim
    bias_array = np.asarray(bias, dtype=np.float32).reshape(-1)
    w = np.zeros((dim, bias_array.size), np.float32) if weight is None else weight
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [input_name or spec.input_tensor, "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], [output_name or spec.output_tensor]),
        ],
        f"{task}_{version}",
        [
            helper.make_tensor_value_info(
                input_name or spec.input_tensor, TensorProto.FLOAT, ["batch", dim]
            )
        ],
        [
            helper.make_tensor_value_info(
                output_name or spec.output_tensor, TensorProto.FLOAT, ["batch", bias_array.size]
            )
        ],
        initializer=[
            numpy_helper.from_array(w.astype(np.float32), "W"),
            numpy_helper.from_array(bias_array, "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    props = {
        "task": task,
        "version": version,
        "feature_schema_version": schema,
        "output_names": json.dumps(list(spec.outputs)),
        "metrics": json.dumps({"test": 1.0}),
        **(metadata or {}),
    }
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def model_entry(
    task: str,
    version: str,
    data: bytes,
    *,
    status: str = "active",
    rollout_pct: float = 100.0,
    schema: str = SCHEMA,
    input_dim: int | None = None,
) -> ModelEntry:
    spec = task_spec(task)
    return ModelEntry(
        version=version,
        file=f"{task}-{version}.onnx",
        sha256=sha256_bytes(data),
        status=status,
        rollout_pct=rollout_pct,
        feature_schema_version=schema,
        input_name=spec.input_tensor,
        input_dim=INPUT_DIMS[task] if input_dim is None else input_dim,
        output_name=spec.output_tensor,
        output_dim=len(spec.outputs),
        metrics={"test": 1.0},
    )


def confidence_bias(k: int) -> np.ndarray:
    """A probability that identifies version ``k``: ``0.5 + 0.01 k`` (k < 50)."""
    return np.array([0.5 + 0.01 * k])


BIAS_OF_KIND = {
    "regression": master_bias,
    "classification": preset_bias,
    "probability": confidence_bias,
}


def default_bias(task: str, k: int) -> np.ndarray:
    """The bias that identifies version ``k`` of ``task``, by the task's kind."""
    return BIAS_OF_KIND[task_spec(task).kind](k)


def build_bundle(
    path: Path,
    versions: Mapping[str, Sequence[str]] | None = None,
    *,
    active: Mapping[str, str | None] | None = None,
    rollout_pct: float = 100.0,
    experiments: Mapping[str, Experiment] | None = None,
    flags: Mapping[str, bool] | None = None,
    models: Mapping[tuple[str, str], bytes] | None = None,
    schema: str = SCHEMA,
    input_dims: Mapping[str, int] = INPUT_DIMS,
    references: Mapping[str, bytes] | None = None,
    ood_policy: Mapping[str, str] | None = None,
    adapters: UserAdapters | None = None,
) -> Path:
    """Write a bundle: for each task its versions (version ``k`` of the list outputs
    :func:`default_bias` ``(task, k)``), the first active unless ``active`` says otherwise,
    and the users' ``adapters`` if given. ``schema`` and ``input_dims`` default to the fake
    feature names of this module. ``references``: task → the training reference file every
    version of it ships with (:func:`reference_for`); ``ood_policy``: task → its policy in
    the manifest."""
    versions = versions or {task: ["v0"] for task in INPUT_DIMS}
    tasks: dict[str, TaskEntry] = {}
    files: dict[str, Any] = {}
    for task, names in versions.items():
        chosen = (active or {}).get(task, names[0] if names else None)
        entries = {}
        for k, version in enumerate(names):
            data = (models or {}).get((task, version)) or affine_model(
                task, version, default_bias(task, k), input_dim=input_dims[task], schema=schema
            )
            status = "active" if version == chosen else "candidate"
            entry = model_entry(
                task,
                version,
                data,
                status=status,
                rollout_pct=rollout_pct if status == "active" else 0.0,
                schema=schema,
                input_dim=input_dims[task],
            )
            reference = (references or {}).get(task)
            if reference is not None:
                name = f"{task}-{version}.reference.json"
                entry = replace(entry, reference=name, reference_sha256=sha256_bytes(reference))
                files[name] = reference
            entries[version] = entry
            files[entry.file] = data
        tasks[task] = TaskEntry(chosen, entries, ood_policy=(ood_policy or {}).get(task))
    adapter_file = None
    if adapters is not None:
        files[ADAPTERS_FILE] = adapters.to_bytes()
        adapter_file = AdapterFile(ADAPTERS_FILE, sha256_bytes(files[ADAPTERS_FILE]))
    manifest = Manifest(
        feature_schema_version=schema,
        tasks=tasks,
        flags={"enable_cpu_ml": True, **(flags or {})},
        experiments=dict(experiments or {}),
        user_adapters=adapter_file,
    )
    return write_bundle(path, manifest, files)
