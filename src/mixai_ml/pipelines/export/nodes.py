"""Thin Kedro nodes of the export pipeline; the logic is in :mod:`mixai_ml.export`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnx
import pandas as pd

from mixai_inference.bundle import Manifest, sha256_bytes
from mixai_inference.tasks import task_names, task_spec
from mixai_ml import edge
from mixai_ml.evaluation.predictions import active_model, run_onnx
from mixai_ml.export import onnx_export, registry
from mixai_ml.export.store import ModelStore
from mixai_ml.parameters import settings_section
from mixai_ml.personalization import store
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.data import arrays

logger = logging.getLogger(__name__)


def _scalar_metrics(block: dict[str, Any]) -> dict[str, float]:
    return {key: value for key, value in block.items() if isinstance(value, int | float)}


def export_model(
    trained_task: TrainedTask, model_input: pd.DataFrame, task_evaluation: dict[str, Any]
) -> tuple[dict[str, onnx.ModelProto | bytes], dict[str, Any]]:
    """Export the trained model to ONNX and prove parity on the held-out split.

    Returns:
        ``{uri: model or bytes}`` for the model store: the model and its training reference
        (empty when training was skipped), and the export report (status, version, uri,
        sha256, parity).
    """
    task = trained_task.task
    if not trained_task.trained or trained_task.model is None:
        return {}, {"task": task, "status": "skipped", "reason": trained_task.reason}
    metrics = _scalar_metrics(task_evaluation.get("model", {}))
    proto = onnx_export.to_onnx(trained_task, metrics)
    held_out, _ = arrays(model_input, task, "test")
    parity = onnx_export.check_parity(proto, trained_task.model, held_out)
    logger.info("%s: ONNX parity max |diff| %.2e", task, parity["max_abs_diff"])
    uri = ModelStore.uri(task, trained_task.version)
    stored: dict[str, onnx.ModelProto | bytes] = {uri: proto}
    if trained_task.reference is not None:
        stored[ModelStore.reference_uri(uri)] = trained_task.reference.to_bytes()
    return stored, {
        "task": task,
        "status": "exported",
        "version": trained_task.version,
        "uri": uri,
        "sha256": sha256_bytes(proto.SerializeToString()),
        "opset": onnx_export.OPSET,
        "parity": parity,
        "metrics": metrics,
        "reference": trained_task.reference is not None,
    }


def build_edge_graphs(params: dict[str, Any]) -> dict[str, onnx.ModelProto]:
    """The browser's graphs (``features.onnx``, ``alignment.onnx``), shipped in the bundle."""
    return edge.build_edge_graphs(**_settings(params)["edge"])


def _settings(params: Any) -> Mapping[str, Any]:
    """The ``export`` parameters, their keys checked."""
    return settings_section(
        params, "export", required=("user_adapters", "flags", "edge", "ood_policy")
    )


def register(
    promotion_decision: dict[str, Any],
    model_registry: pd.DataFrame,
    *export_reports: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Register the exported candidates and apply the promotion decision.

    Returns:
        The registry after the change twice: for the table and for the bundle's nodes.
    """
    exported = [
        registry.ExportedModel(
            report["task"], report["version"], report["uri"], report["sha256"], report["metrics"]
        )
        for report in export_reports
        if report["status"] == "exported"
    ]
    table = registry.register_candidates(
        model_registry, exported, promotion_decision, datetime.now(UTC)
    )
    return table, table.copy()


def build_bundle(
    model_registry: pd.DataFrame,
    model_store: ModelStore,
    ml_feature_flags: pd.DataFrame,
    ab_experiments: pd.DataFrame,
    edge_graphs: dict[str, bytes],
    params: dict[str, Any],
    *model_inputs: pd.DataFrame,
) -> tuple[tuple[Manifest, dict[str, bytes]], dict[str, Any]]:
    """The deployable bundle: the registry's shipped models, the database's flags and running
    experiments, the edge graphs and, unless ``export.user_adapters`` is off, the users'
    adapters of each personalised task against its active version.

    Args:
        model_inputs: the model input of each personalised task, in registry order.
    """
    now = datetime.now(UTC)
    settings = _settings(params)
    personalised = [task for task in task_names() if task_spec(task).personalized]
    fitted = []
    for task, model_input in zip(personalised, model_inputs, strict=True):
        active = active_model(model_registry, task)
        if active is None or not settings["user_adapters"] or model_input.empty:
            continue
        model = model_store.read(str(active["uri"]), str(active["sha256"]))
        inputs = model_input[list(task_spec(task).input_names())].to_numpy(np.float32)
        outputs = run_onnx(model, inputs)
        fitted.append(store.fit_task_adapters(task, str(active["version"]), model_input, outputs))
    adapters = store.adapter_store(fitted, f"{now:%Y-%m-%dT%H:%M:%SZ}")
    flags, experiments = registry.bundle_control(
        settings["flags"], ml_feature_flags, ab_experiments
    )
    manifest, files = registry.build_manifest(
        model_registry,
        flags,
        experiments,
        now,
        model_store,
        edge_graphs,
        ood_policy=settings["ood_policy"],
        adapters=adapters,
    )
    return (manifest, files), registry.bundle_summary(manifest)
