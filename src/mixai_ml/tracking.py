"""Experiment tracking with kedro-mlflow: off by default, on with ``MIXAI_MLFLOW=1``.

When the switch is on (``settings.py`` reads it once, when the project is configured),
kedro-mlflow starts one MLflow run per ``kedro run`` and logs the parameters every node reads;
:class:`MlflowTrackingHooks` adds what a training run should leave behind:

* per trained task: model version and status (tags), split sizes, governance counts and the
  kept epoch (metrics), train and validation loss per epoch (metric histories: the learning
  curves in the MLflow UI);
* per evaluated task: every numeric metric of every contender, ``<task>.<source>.<metric>``
  (e.g. ``master_reg.model.mae_norm``, ``preset_cls.rules.macro_f1``);
* per exported task: the ONNX file, artifact ``onnx/<task>/<version>.onnx``;
* the evaluation report and the promotion decision, as artifacts.

The store is local: ``sqlite:///<project>/mlruns/mlflow.db`` with the artifacts under
``<project>/mlruns/`` (git-ignored), unless ``MLFLOW_TRACKING_URI`` names another one.
See docs/experiment_tracking.md.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from mixai_inference.flags import parse_bool
from mixai_inference.tasks import task_names

SWITCH = "MIXAI_MLFLOW"
"""The environment variable that turns tracking on (``1``, ``true``, ``yes`` or ``on``)."""

MLFLOW_PLUGIN = "kedro_mlflow"
"""kedro-mlflow's distribution name, as ``DISABLE_HOOKS_FOR_PLUGINS`` matches it."""

STORE_FOLDER = "mlruns"
"""The local store, relative to the project: ``mlflow.db`` and the artifacts."""

_MAX_BATCH = 1000  # MLflow's limit of metrics in one log_batch call


def tracking_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``MIXAI_MLFLOW`` switches experiment tracking on (unset: off).

    Raises:
        ValueError: If it is set to something that is not a boolean.
    """
    raw = environ.get(SWITCH, "")
    return parse_bool(raw) if raw.strip() else False


def local_store_uri(project_path: str | Path) -> str:
    """The tracking URI of the project's local store: an SQLite file in ``mlruns/``."""
    return f"sqlite:///{Path(project_path).resolve() / STORE_FOLDER / 'mlflow.db'}"


def scalar_metrics(tree: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """Every finite number in a nested mapping, keyed by its dotted path.

    Booleans, strings, lists (confusion matrices, reliability curves) and NaN
    (e.g. ROC-AUC of a single-class test set) are left out.

    Example:
        ``scalar_metrics({"model": {"mae_norm": 0.1, "per_parameter": {"comp_ratio":
        {"mae": 0.4}}}}, "master_reg")`` gives ``{"master_reg.model.mae_norm": 0.1,
        "master_reg.model.per_parameter.comp_ratio.mae": 0.4}``.
    """
    found: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            found.update(scalar_metrics(value, name))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            found[name] = float(value)
    return found


def training_metrics(task: str, info: Mapping[str, Any]) -> dict[str, float]:
    """Split sizes, governance counts and the kept epoch of a trained task's ``info``."""
    found = scalar_metrics(
        {"n_samples": info.get("n_samples", {}), "governance": info.get("governance", {})}, task
    )
    history = info.get("history") or {}
    if history.get("best_epoch", -1) >= 0:
        found[f"{task}.best_epoch"] = float(history["best_epoch"])
    return found


def loss_history(task: str, history: Mapping[str, Any]) -> Iterator[tuple[str, float, int]]:
    """``(key, loss, epoch)`` of the train and validation losses, for metric histories."""
    for curve in ("train_loss", "validation_loss"):
        for epoch, loss in enumerate(history.get(curve, [])):
            if math.isfinite(loss):
                yield f"{task}.{curve}", float(loss), epoch


class MlflowTrackingHooks:
    """Logs a training run's results into the MLflow run that kedro-mlflow started.

    Registered by ``settings.py`` only when tracking is on; every method does nothing
    when no run is active (kedro-mlflow leaves pipelines in its ``disable_tracking``
    list untracked).
    """

    def __init__(self) -> None:
        self._store_uri_set: str | None = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Point kedro-mlflow at the project's local store (before its own hook reads it)."""
        current = os.environ.get("MLFLOW_TRACKING_URI")
        if current and current != self._store_uri_set:
            return  # the user's choice
        (Path(context.project_path) / STORE_FOLDER).mkdir(exist_ok=True)
        self._store_uri_set = local_store_uri(context.project_path)
        os.environ["MLFLOW_TRACKING_URI"] = self._store_uri_set

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        import mlflow  # only imported when tracking is on

        if mlflow.active_run() is None:
            return
        task, _, name = dataset_name.rpartition(".")
        is_task = task in task_names()
        if is_task and name == "trained_task":
            log_trained_task(task, data)
        elif is_task and name == "task_evaluation":
            mlflow.log_metrics(
                scalar_metrics({key: data[key] for key in data if key != "task"}, task)
            )
        elif is_task and name == "onnx_store":
            log_onnx_models(data)
        elif dataset_name == "evaluation_report":
            mlflow.log_text(data, "evaluation_report.md")
        elif dataset_name == "promotion_decision":
            mlflow.log_dict(data, "promotion_decision.json")


def log_trained_task(task: str, trained: Any) -> None:
    """Tags, metrics and loss histories of a :class:`~mixai_ml.training.artifact.TrainedTask`."""
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tags({f"{task}.status": trained.status, f"{task}.version": trained.version})
    mlflow.log_metrics(training_metrics(task, trained.info))
    now = int(time.time() * 1000)
    history = [
        Metric(key, value, now, step)
        for key, value, step in loss_history(task, trained.info.get("history") or {})
    ]
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    client = mlflow.MlflowClient()
    for start in range(0, len(history), _MAX_BATCH):
        client.log_batch(run_id, metrics=history[start : start + _MAX_BATCH])


def log_onnx_models(models: Mapping[str, Any]) -> None:
    """Each exported ``{uri: onnx.ModelProto}`` (``<task>/<version>.onnx``) as artifact
    ``onnx/<task>/<version>.onnx``."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        for uri, model in models.items():
            path = Path(folder) / Path(uri).name
            path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
            mlflow.log_artifact(str(path), artifact_path=f"onnx/{Path(uri).parent}")
