"""Deterministic training with early stopping, and Platt calibration."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from mixai_ml.parameters import settings_section
from mixai_ml.progress import progress
from mixai_ml.training.models import TabularNet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings (``<task>.model.fit`` in ``parameters_training.yml``)."""

    learning_rate: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int

    @classmethod
    def from_params(cls, params: Any, where: str) -> FitConfig:
        """From the ``fit`` section at ``where``; a missing or unknown key raises, naming it."""
        return cls(**settings_section(params, where, required=[f.name for f in fields(cls)]))


@dataclass
class History:
    """Loss per epoch on the training and validation splits."""

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1

    def to_dict(self) -> dict[str, object]:
        return {
            "train_loss": self.train_loss,
            "validation_loss": self.validation_loss,
            "best_epoch": self.best_epoch,
        }


def seed_everything(seed: int) -> torch.Generator:
    """Make a training run reproducible: seeded RNGs, deterministic kernels, one thread."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    return torch.Generator().manual_seed(seed)


def loss_function(model: TabularNet) -> nn.Module:
    """The training loss on :meth:`TabularNet.logits` for the model's head."""
    if model.config.head == "regression":
        return nn.HuberLoss(delta=1.0)
    if model.config.head == "softmax":
        return nn.CrossEntropyLoss()
    return nn.BCEWithLogitsLoss()


def targets_tensor(model: TabularNet, values: np.ndarray) -> torch.Tensor:
    """Targets in the space of the logits: standardised values, class indices (or, for soft
    targets, ``(n, n_classes)`` probabilities) or a 0/1 (or probability) column."""
    if model.config.head == "regression":
        return (
            torch.from_numpy(values.astype(np.float32)) - model.target_mean
        ) / model.target_scale
    if model.config.head == "softmax":
        if values.ndim == 2:
            return torch.from_numpy(values.astype(np.float32))
        return torch.from_numpy(values.astype(np.int64))
    return torch.from_numpy(values.astype(np.float32)).reshape(-1, 1)


def fit(
    model: TabularNet,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    config: FitConfig,
    *,
    description: str = "training",
) -> History:
    """Train ``model`` with AdamW, keeping the weights of the best validation epoch.

    Args:
        model: a :class:`TabularNet` with its input (and target) scaling set.
        train, validation: ``(inputs float32 (n, n_inputs), targets)``; targets
            are label units (regression), class indices or class probabilities ``(n, k)``
            (softmax) or 0/1 or probabilities (sigmoid).
        config: optimisation settings; stops after ``patience`` epochs without
            a better validation loss.
        description: label of the progress bar.

    Returns:
        The loss history; ``model`` holds the best epoch's weights.
    """
    generator = seed_everything(config.seed)
    criterion = loss_function(model)
    train_inputs, train_targets = torch.from_numpy(train[0]), targets_tensor(model, train[1])
    val_inputs, val_targets = torch.from_numpy(validation[0]), targets_tensor(model, validation[1])

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return criterion(model.logits(train_inputs[batch]), train_targets[batch])

    def validation_loss() -> float:
        return float(criterion(model.logits(val_inputs), val_targets))

    return optimise(
        model, len(train_inputs), batch_loss, validation_loss, config, generator, description
    )


def optimise(
    model: nn.Module,
    n_train: int,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    validation_loss: Callable[[], float],
    config: FitConfig,
    generator: torch.Generator,
    description: str,
) -> History:
    """The training loop of every network: AdamW over shuffled mini-batches, early stopping
    on the validation loss, the best epoch's weights kept.

    Args:
        model: the network; its parameters are optimised.
        n_train: the number of training rows.
        batch_loss: the loss of a batch of training row indices (``(b,)`` int64).
        validation_loss: the loss on the validation rows (called in evaluation mode,
            without gradients).
        config: optimisation settings.
        generator: the seeded generator that shuffles the rows (:func:`seed_everything`).
        description: label of the progress bar and the log line.
    """
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history = History()
    best_state = copy.deepcopy(model.state_dict())
    best_loss = float("inf")
    epochs = progress(range(config.max_epochs), desc=description, unit="epoch")
    for epoch in epochs:
        model.train()
        order = torch.randperm(n_train, generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = batch_loss(batch)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = validation_loss()
        history.train_loss.append(total / max(len(order), 1))
        history.validation_loss.append(val_loss)
        if val_loss < best_loss:
            best_loss, history.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - history.best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    logger.info(
        "%s: best epoch %d of %d, validation loss %.4f",
        description,
        history.best_epoch + 1,
        len(history.train_loss),
        best_loss,
    )
    return history


def calibrate(model: TabularNet, inputs: np.ndarray, outcomes: np.ndarray) -> tuple[float, float]:
    """Platt scaling of a sigmoid model's logit, fitted on held-out data.

    Minimises the log loss of ``sigmoid(slope * logit + intercept)`` against the
    0/1 ``outcomes`` and stores the result in the model.

    Returns:
        ``(slope, intercept)``.
    """
    with torch.no_grad():
        logits = model.logits(torch.from_numpy(inputs)).reshape(-1)
    targets = torch.from_numpy(outcomes.astype(np.float32)).reshape(-1)
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimiser = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")
    criterion = nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = criterion(logits * params[0] + params[1], targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    slope, intercept = (float(value) for value in params.detach())
    model.set_calibration(slope, intercept)
    return slope, intercept
