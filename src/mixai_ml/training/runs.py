"""Training one task end to end: the gate, the model, the baseline, the record."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from mixai_inference.ood import InputReference
from mixai_inference.tasks import TaskSpec, task_spec
from mixai_ml.evaluation.metrics import primary_metric_function
from mixai_ml.evaluation.promotion import gain
from mixai_ml.parameters import settings_section
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.baselines import make_sklearn_baseline
from mixai_ml.training.data import arrays
from mixai_ml.training.models import HEAD_OF_KIND, NET_KEYS, NetConfig, Scaling, TabularNet, predict
from mixai_ml.training.reference import fit_reference, served_outputs
from mixai_ml.training.trainer import FitConfig, calibrate, fit

logger = logging.getLogger(__name__)


def gate(split_sizes: Mapping[str, int], min_samples: int) -> str:
    """Why a task is skipped, or ``""`` if it may train.

    Args:
        split_sizes: trainable rows per split (``train``, ``validation``, ``test``).
        min_samples: ``ML_MIN_SAMPLES``.
    """
    n_samples = sum(split_sizes.values())
    if n_samples < min_samples:
        return (
            f"only {n_samples} trainable samples after consent and exclusions, "
            f"below ML_MIN_SAMPLES={min_samples}"
        )
    empty = [name for name in ("train", "validation", "test") if not split_sizes.get(name)]
    if empty:
        return f"no users in the {' and '.join(empty)} split(s): add data or change training.split"
    return ""


def model_version(model: TabularNet, trained_at: datetime) -> str:
    """``YYYYmmddHHMMSS-<8 hex of the weights' sha256>``: sortable and content-bound."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    return f"{trained_at:%Y%m%d%H%M%S}-{digest}"


def new_network(
    spec: TaskSpec, inputs: np.ndarray, targets: np.ndarray, net: Mapping[str, Any]
) -> TabularNet:
    """A fresh network for ``spec``'s kind, seeded by ``net.seed``, its scalings fitted."""
    config = NetConfig(
        n_inputs=inputs.shape[1],
        n_outputs=len(spec.outputs),
        head=HEAD_OF_KIND[spec.kind],
        hidden=tuple(net["hidden"]),
        dropout=float(net["dropout"]),
    )
    torch.manual_seed(int(net["seed"]))
    model = TabularNet(config)
    model.set_input_scaling(Scaling.fit(inputs))
    if config.head == "regression":
        model.set_target_scaling(Scaling.fit(targets))
    return model


def train_task(
    task: str,
    model_input: pd.DataFrame,
    training_job: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    reference: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> TrainedTask:
    """Train the model and the scikit-learn baseline of ``task`` on its train split.

    Args:
        task: a registered task.
        model_input: output of :func:`mixai_ml.training.data.build_model_input`.
        training_job: the started ``training_jobs`` row (status ``running`` or
            ``skipped``); a skipped job trains nothing.
        params: ``net`` (``hidden``, ``dropout``, ``seed``), ``fit`` (:class:`FitConfig`
            fields) and ``baseline`` (:func:`make_sklearn_baseline` config).
        reference: the training reference's parameters (:func:`fit_reference`); ``None``:
            no reference.
        now: the training time (for the version), default the current time.

    Returns:
        The :class:`TrainedTask`; ``info`` holds the split sizes, loss history and,
        for a probability task, the calibration fitted on the validation split. Its
        ``reference`` is fitted on the train and validation rows (``None`` when there are
        too few; ``info["reference"]`` says why).
    """
    spec = task_spec(task)
    where = f"{task}.model"
    params = settings_section(params, where, required=("net", "fit", "baseline"))
    net = settings_section(params["net"], f"{where}.net", required=NET_KEYS)
    fit_config = FitConfig.from_params(params["fit"], f"{where}.fit")
    info: dict[str, Any] = {"training_job_id": training_job["training_job_id"]}
    if training_job["status"] == "skipped":
        return TrainedTask(task, "skipped", reason=str(training_job["reason"]), info=info)
    train, validation = arrays(model_input, task, "train"), arrays(model_input, task, "validation")
    info["n_samples"] = {
        name: int((model_input["split"] == name).sum()) for name in ("train", "validation", "test")
    }
    model = new_network(spec, *train, net)
    history = fit(model, train, validation, fit_config, description=f"training {task}")
    info["history"] = history.to_dict()
    if model.config.head == "sigmoid":
        slope, intercept = calibrate(model, *validation)
        info["calibration"] = {"slope": slope, "intercept": intercept}
    baseline = make_sklearn_baseline(spec, params["baseline"])
    baseline.fit(*train)
    info["config"] = {
        key: dict(value) for key, value in params.items() if isinstance(value, Mapping)
    }
    version = model_version(model, now or datetime.now(UTC))
    logger.info("%s: trained version %s on %s", task, version, info["n_samples"])
    return TrainedTask(
        task,
        "succeeded",
        version=version,
        input_names=spec.input_names(),
        model=model,
        baseline=baseline,
        info=info,
        reference=None
        if reference is None
        else _reference(spec, model, model_input, reference, info),
    )


def _reference(
    spec: TaskSpec,
    model: TabularNet,
    model_input: pd.DataFrame,
    params: Mapping[str, Any],
    info: dict[str, Any],
) -> InputReference | None:
    """The model's training reference on the rows it learnt from (train and validation)."""
    rows = model_input[model_input["split"] != "test"]
    inputs = rows[list(spec.input_names())].to_numpy(dtype=np.float32)
    outputs = served_outputs(spec, predict(model, inputs))
    try:
        fitted = fit_reference(
            inputs, outputs, rows["user_id"], spec.input_names(), spec.outputs, params
        )
    except ValueError as error:
        logger.warning("%s: no training reference, its model is not guarded: %s", spec.name, error)
        info["reference"] = str(error)
        return None
    info["reference"] = dict(fitted.info)
    return fitted


def validation_score(trained: TrainedTask, model_input: pd.DataFrame) -> float:
    """The primary metric of a trained model on the validation split."""
    spec = task_spec(trained.task)
    inputs, targets = arrays(model_input, trained.task, "validation")
    if trained.model is None or not len(inputs):
        return float("nan")
    outputs = predict(trained.model, inputs).astype(np.float64)
    outputs = outputs[:, 0] if spec.kind == "probability" else outputs
    return float(primary_metric_function(spec)(targets.astype(np.float64), outputs))


def choose_candidate(
    single: TrainedTask, multi: TrainedTask | None, model_input: pd.DataFrame
) -> TrainedTask:
    """The task's candidate: its own network, or its head of the multi-task network when
    that scores better on the validation split (the test split stays for the evaluation).

    The chosen model keeps the single-task run's scikit-learn baseline and record; its
    ``info["architectures"]`` holds both versions, their validation scores and the choice.
    A head trained in another run (another ``training_job_id``, e.g. when the task retrains
    alone) is not a candidate: it learned from other data, and the run must give a new model.
    """
    if not single.trained or multi is None or not multi.trained:
        return single
    if multi.info.get("training_job_id") != single.info.get("training_job_id"):
        logger.info("%s: the multi-task head is from another run; not a candidate", single.task)
        return single
    spec = task_spec(single.task)
    scores = {"single_task": validation_score(single, model_input)}
    scores["multi_task"] = validation_score(multi, model_input)
    better = gain(spec, scores["multi_task"], scores["single_task"]) > 0
    chosen = multi if better else single
    info = dict(single.info)  # the run: training job, governance, split sizes
    if better:  # how the chosen network trained
        info.pop("calibration", None)
        info.update(
            {
                key: multi.info[key]
                for key in ("history", "config", "calibration")
                if key in multi.info
            }
        )
    info["architectures"] = {
        "chosen": "multi_task" if better else "single_task",
        "metric": spec.primary_metric,
        "validation": scores,
        "versions": {"single_task": single.version, "multi_task": multi.version},
        "trunk": multi.info.get("trunk"),
    }
    logger.info(
        "%s: %s chosen on validation %s (single %.4f, multi %.4f)",
        single.task,
        info["architectures"]["chosen"],
        spec.primary_metric,
        scores["single_task"],
        scores["multi_task"],
    )
    return TrainedTask(
        single.task,
        "succeeded",
        version=chosen.version,
        input_names=chosen.input_names,
        model=chosen.model,
        baseline=single.baseline,
        info=info,
        reference=chosen.reference,
    )


def with_reference(
    trained: TrainedTask, model_input: pd.DataFrame, params: Mapping[str, Any]
) -> TrainedTask:
    """``trained`` with the training reference of its model (:func:`fit_reference`'s
    ``params``), when it has a model and no reference yet."""
    if not trained.trained or trained.model is None or trained.reference is not None:
        return trained
    spec = task_spec(trained.task)
    return replace(
        trained, reference=_reference(spec, trained.model, model_input, params, trained.info)
    )
