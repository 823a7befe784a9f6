"""One network for several tasks: a shared trunk over their common input, a head each.

The tasks of a trunk (:attr:`TaskSpec.trunk <mixai_inference.tasks.TaskSpec.trunk>`) read the
same features; one :class:`~mixai_ml.training.models.TabularNet` per task is built, and all of
them share the same hidden layers (the same parameter objects), so that each one alone *is*
its task's network: trunk, then its own output layer, target scaling and calibration. They
are trained together on the sum of their losses (each task on the jobs it has labels for),
then copied apart. Each task's copy is a candidate like its single-task network: evaluated,
exported to its own ONNX file and served by the same predictor, unchanged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from mixai_inference.tasks import task_spec
from mixai_ml.parameters import settings_section
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.models import HEAD_OF_KIND, NET_KEYS, NetConfig, Scaling, TabularNet
from mixai_ml.training.trainer import (
    FitConfig,
    calibrate,
    loss_function,
    optimise,
    seed_everything,
    targets_tensor,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def shared_networks(
    tasks: tuple[str, ...], n_inputs: int, net: Mapping[str, Any]
) -> dict[str, TabularNet]:
    """One :class:`TabularNet` per task, all sharing the first task's hidden layers.

    Args:
        tasks: The trunk's tasks (all read the same ``n_inputs`` features).
        n_inputs: The width of the common input.
        net: ``hidden``, ``dropout`` and ``seed`` of the shared trunk.
    """
    torch.manual_seed(int(net["seed"]))
    networks: dict[str, TabularNet] = {}
    for task in tasks:
        spec = task_spec(task)
        config = NetConfig(
            n_inputs=n_inputs,
            n_outputs=len(spec.outputs),
            head=HEAD_OF_KIND[spec.kind],
            hidden=tuple(net["hidden"]),
            dropout=float(net["dropout"]),
        )
        network = TabularNet(config)
        if networks:
            trunk = list(next(iter(networks.values())).body)[:-1]
            network.body = torch.nn.Sequential(*trunk, network.body[-1])
        networks[task] = network
    return networks


def union_rows(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every job of the trunk's tasks once: ``job_id``, ``split`` and the inputs.

    Raises:
        ValueError: If the tasks read different features, or a job is in different splits.
    """
    tasks = list(frames)
    names = task_spec(tasks[0]).input_names()
    different = [task for task in tasks if task_spec(task).input_names() != names]
    if different:
        raise ValueError(f"tasks {different} do not read the features of {tasks[0]}: no trunk")
    union = pd.concat([frame[["job_id", "split", *names]] for frame in frames.values()])
    union = union.drop_duplicates("job_id").sort_values("job_id", kind="stable")
    splits = pd.concat([frame[["job_id", "split"]] for frame in frames.values()])
    if splits.drop_duplicates().groupby("job_id").size().max() > 1:
        raise ValueError("a job is in different splits for different tasks: use one split salt")
    return union.reset_index(drop=True)


def train_shared(
    frames: Mapping[str, pd.DataFrame],
    params: Mapping[str, Any],
    *,
    now: datetime,
    trunk: str,
) -> dict[str, TrainedTask]:
    """Train the multi-task network of ``frames``' tasks and split it into one candidate each.

    Args:
        frames: task -> its model input (:func:`mixai_ml.training.data.build_model_input`);
            at least two tasks.
        params: ``net`` (``hidden``, ``dropout``, ``seed``) and ``fit`` (:class:`FitConfig`).
        now: the training time (for the versions).
        trunk: the trunk's name (recorded).

    Returns:
        task -> its head as a :class:`TrainedTask` (``info["architecture"]`` is
        ``multi_task``), without a scikit-learn baseline.
    """
    where = f"multitask.{trunk}"
    params = settings_section(params, where, required=("net", "fit"))
    net = settings_section(params["net"], f"{where}.net", required=NET_KEYS)
    config = FitConfig.from_params(params["fit"], f"{where}.fit")
    from mixai_ml.training.runs import model_version  # runs imports this module

    tasks = tuple(frames)
    union = union_rows(frames)
    names = list(task_spec(tasks[0]).input_names())
    inputs = {split: union.loc[union["split"] == split, names] for split in SPLITS}
    x = {
        split: torch.from_numpy(rows.to_numpy(np.float32, copy=True))
        for split, rows in inputs.items()
    }
    networks = shared_networks(tasks, len(names), net)
    scaling = Scaling.fit(x["train"].numpy())
    # per task and split: the union rows it has labels for, and their targets
    labelled: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for task, frame in frames.items():
        spec, network = task_spec(task), networks[task]
        network.set_input_scaling(scaling)
        train_targets = frame.loc[frame["split"] == "train", list(spec.targets)].to_numpy(
            np.float32
        )
        if network.config.head == "regression":
            network.set_target_scaling(Scaling.fit(train_targets))
        labelled[task] = {}
        for split in SPLITS:
            rows = frame[frame["split"] == split]
            position = pd.Index(union.loc[union["split"] == split, "job_id"]).get_indexer(
                rows["job_id"]
            )
            values = rows[list(spec.targets)].to_numpy(np.float32)
            values = values if spec.kind == "regression" else values[:, 0]
            labelled[task][split] = (torch.from_numpy(position), targets_tensor(network, values))
    generator = seed_everything(config.seed)
    criteria = {task: loss_function(networks[task]) for task in tasks}
    # per task, the row of its targets for each training row of the union (-1: unlabelled)
    target_row = {}
    for task in tasks:
        lookup = torch.full((len(x["train"]),), -1, dtype=torch.int64)
        lookup[labelled[task]["train"][0]] = torch.arange(len(labelled[task]["train"][0]))
        target_row[task] = lookup

    # Kendall, Gal & Cipolla (2018): a learned log-variance per task weighs its loss, so
    # that no task's scale (Huber on standardised targets, cross-entropy) dominates the trunk
    log_variance = torch.nn.Parameter(torch.zeros(len(tasks)))

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(())
        for k, task in enumerate(tasks):
            rows = target_row[task][batch]
            keep = rows >= 0
            if keep.any():
                logits = networks[task].logits(x["train"][batch[keep]])
                loss = criteria[task](logits, labelled[task]["train"][1][rows[keep]])
                total = total + torch.exp(-log_variance[k]) * loss + log_variance[k]
        return total

    # each head keeps the weights (trunk included) of its own best validation epoch; training
    # goes on while any head still improves
    best: dict[str, tuple[float, dict[str, torch.Tensor]]] = {}
    curves: dict[str, list[float]] = {task: [] for task in tasks}

    def validation_loss() -> float:
        for task in tasks:
            position, values = labelled[task]["validation"]
            loss = float(criteria[task](networks[task].logits(x["validation"][position]), values))
            curves[task].append(loss)
            if task not in best or loss < best[task][0]:
                best[task] = (loss, copy.deepcopy(networks[task].state_dict()))
        return sum(loss for loss, _ in best.values())

    weighted = torch.nn.ModuleList(networks.values())
    weighted.register_parameter("log_variance", log_variance)
    history = optimise(
        weighted,
        len(x["train"]),
        batch_loss,
        validation_loss,
        config,
        generator,
        f"training the {trunk} trunk ({', '.join(tasks)})",
    )
    trained = {}
    for task, network in networks.items():
        network = copy.deepcopy(network)  # its own weights from now on
        network.load_state_dict(best[task][1])
        network.eval()
        frame = frames[task]
        own_best = int(np.argmin(curves[task]))
        info: dict[str, Any] = {
            "architecture": "multi_task",
            "trunk": trunk,
            "shared_with": [other for other in tasks if other != task],
            # the shared run's losses, with this head's own validation loss and best epoch
            "history": {
                "train_loss": history.train_loss,
                "validation_loss": curves[task],
                "best_epoch": own_best,
            },
            "task_weights": {
                other: float(torch.exp(-weight))
                for other, weight in zip(tasks, log_variance.detach(), strict=True)
            },
            "n_samples": {split: int((frame["split"] == split).sum()) for split in SPLITS},
            "config": {key: dict(value) for key, value in params.items()},
        }
        if network.config.head == "sigmoid":
            position, outcomes = labelled[task]["validation"]
            slope, intercept = calibrate(
                network, x["validation"][position].numpy(), outcomes.numpy()
            )
            info["calibration"] = {"slope": slope, "intercept": intercept}
        version = model_version(network, now)
        logger.info("%s: multi-task head %s (trunk %s)", task, version, trunk)
        trained[task] = TrainedTask(
            task,
            "succeeded",
            version=version,
            input_names=tuple(names),
            model=network,
            info=info,
        )
    return trained
