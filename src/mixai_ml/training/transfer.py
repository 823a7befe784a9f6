"""Transfer: pre-train a task's network on the rules' answers, then fine-tune on labels.

The rules (:attr:`TaskSpec.rule <mixai_inference.tasks.TaskSpec.rule>`) answer every job
without a label, so a network can first learn to imitate them on every job whose features
may be used (knowledge distillation from the rules: soft targets, Hinton, Vinyals & Dean,
2015), and then learn from the few labelled jobs where the users disagree with the rules.
Regression targets are standardised by the rules' answers (no label is needed to pre-train).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixai_inference.tasks import task_spec
from mixai_ml.training.baselines import rules_predict
from mixai_ml.training.models import TabularNet
from mixai_ml.training.runs import new_network
from mixai_ml.training.trainer import FitConfig, calibrate, fit


def rules_targets(task: str, inputs: np.ndarray) -> np.ndarray:
    """The rules' answers as training targets: values, class probabilities or a probability."""
    outputs = rules_predict(task_spec(task), inputs).astype(np.float32)
    return outputs[:, 0] if task_spec(task).kind == "probability" else outputs


def pretrain_on_rules(
    task: str,
    pool: np.ndarray,
    validation: np.ndarray,
    net: Mapping[str, Any],
    config: FitConfig,
) -> TabularNet:
    """A network that imitates the rules on unlabelled inputs.

    Args:
        task: a registered task.
        pool: inputs ``(n, n_inputs)`` without labels to learn from.
        validation: inputs without labels for early stopping.
        net: ``hidden``, ``dropout``, ``seed``.
        config: the pre-training's optimisation settings.
    """
    targets = rules_targets(task, pool)
    model = new_network(task_spec(task), pool, targets, net)
    fit(
        model,
        (pool, targets),
        (validation, rules_targets(task, validation)),
        config,
        description=f"pre-training {task} on the rules",
    )
    return model


def fine_tune(
    task: str,
    start: TabularNet | None,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    net: Mapping[str, Any],
    config: FitConfig,
) -> TabularNet:
    """Train on labelled jobs from ``start`` (a pre-trained network, copied) or from scratch.

    A probability task's network is then calibrated on ``validation`` (as in training).
    """
    spec = task_spec(task)
    model = new_network(spec, *train, net) if start is None else copy.deepcopy(start)
    fit(model, train, validation, config, description=f"fine-tuning {task}")
    if model.config.head == "sigmoid":
        calibrate(model, *validation)
    return model
