"""Offline metrics of the three tasks, from arrays of truths and predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mixai_inference.tasks import ALIGN_CONF, MASTER_PARAM_RANGES, MASTER_REG, PRESET_CLS, PRESETS

PRIMARY_METRIC = {MASTER_REG: "mae_norm", PRESET_CLS: "macro_f1", ALIGN_CONF: "roc_auc"}
"""The metric each task is judged and promoted on."""

HIGHER_IS_BETTER = {"mae_norm": False, "macro_f1": True, "roc_auc": True}


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE and R² per mastering parameter, and ``mae_norm``.

    Args:
        truth, predicted: ``(n, 8)`` in label units, CONTRACTS §5 order.

    Returns:
        ``per_parameter`` (name -> mae, rmse, r2, mae_norm) and ``mae_norm``: the
        MAE divided by the parameter's range, averaged over the parameters.
    """
    per_parameter = {}
    for column, (name, (low, high)) in enumerate(MASTER_PARAM_RANGES.items()):
        errors = predicted[:, column] - truth[:, column]
        per_parameter[name] = {
            "mae": float(np.mean(np.abs(errors))),
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "r2": float(skm.r2_score(truth[:, column], predicted[:, column])),
            "mae_norm": float(np.mean(np.abs(errors)) / (high - low)),
        }
    mae_norm = float(np.mean([values["mae_norm"] for values in per_parameter.values()]))
    return {"mae_norm": mae_norm, "per_parameter": per_parameter}


def mae_norm(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over parameters of MAE / range (the primary ``master_reg`` metric)."""
    spans = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])
    return float(np.mean(np.mean(np.abs(predicted - truth), axis=0) / spans))


def classification_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, top-2 accuracy and the confusion matrix of presets.

    Args:
        truth: class indices ``(n,)`` into :data:`PRESETS`.
        scores: ``(n, 6)`` class scores or probabilities.
    """
    labels = np.arange(len(PRESETS))
    predicted = scores.argmax(axis=1)
    top2 = np.argsort(-scores, axis=1)[:, :2]
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "macro_f1": macro_f1(truth, scores),
        "top2_accuracy": float(np.mean((top2 == truth[:, None]).any(axis=1))),
        "confusion_matrix": skm.confusion_matrix(truth, predicted, labels=labels).tolist(),
        "classes": list(PRESETS),
    }


def macro_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """Macro-averaged F1 over the six presets (absent classes count as 0)."""
    labels = np.arange(len(PRESETS))
    return float(
        skm.f1_score(truth, scores.argmax(axis=1), labels=labels, average="macro", zero_division=0)
    )


def expected_calibration_error(
    outcomes: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """ECE with equal-width bins: Σ_b (n_b / n) · |mean outcome_b − mean probability_b|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(outcomes[inside].mean() - probabilities[inside].mean())
    return float(error)


def ece_noise_floor(
    probabilities: np.ndarray, bins: int = 10, draws: int = 200, seed: int = 0
) -> float:
    """The ECE a *perfectly calibrated* model would show on this many examples.

    Outcomes are drawn as Bernoulli(probability) ``draws`` times and the mean ECE
    returned. On a few hundred examples it is several hundredths: a measured ECE
    near it says the model is as calibrated as this test set can tell.
    """
    rng = np.random.default_rng(seed)
    simulated = rng.random((draws, len(probabilities))) < probabilities
    return float(
        np.mean(
            [
                expected_calibration_error(row.astype(float), probabilities, bins)
                for row in simulated
            ]
        )
    )


def reliability_curve(
    outcomes: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> dict[str, list[float]]:
    """Per equal-width bin: mean predicted probability, observed frequency and count."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    curve: dict[str, list[float]] = {"predicted": [], "observed": [], "count": []}
    for b in range(bins):
        inside = which == b
        if inside.any():
            curve["predicted"].append(float(probabilities[inside].mean()))
            curve["observed"].append(float(outcomes[inside].mean()))
            curve["count"].append(float(inside.sum()))
    return curve


def roc_auc(outcomes: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC-AUC, or NaN when the outcomes have a single class."""
    if len(np.unique(outcomes)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(outcomes, probabilities))


def probability_metrics(
    outcomes: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """ROC-AUC, PR-AUC, Brier score, ECE and the reliability curve of ``align_conf``.

    Args:
        outcomes: 0/1 ``(n,)``: was the alignment right.
        probabilities: predicted probability that it was ``(n,)``.
        bins: equal-width bins of the ECE and the reliability diagram.
    """
    two_classes = len(np.unique(outcomes)) == 2
    return {
        "roc_auc": roc_auc(outcomes, probabilities),
        "pr_auc": float(skm.average_precision_score(outcomes, probabilities))
        if two_classes
        else float("nan"),
        "brier": float(np.mean((probabilities - outcomes) ** 2)),
        "ece": expected_calibration_error(outcomes, probabilities, bins),
        "ece_noise_floor": ece_noise_floor(probabilities, bins),
        "base_rate": float(np.mean(outcomes)),
        "reliability": reliability_curve(outcomes, probabilities, bins),
    }


def task_metrics(
    task: str, truth: np.ndarray, predicted: np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """All metrics of ``task`` (see the three functions above for shapes)."""
    if task == MASTER_REG:
        return regression_metrics(truth, predicted)
    if task == PRESET_CLS:
        return classification_metrics(truth.astype(int), predicted)
    return probability_metrics(truth, predicted, bins)


def primary_metric_function(task: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The primary metric as a fast function ``(truth, predicted) -> float`` for bootstrapping."""
    if task == MASTER_REG:
        return mae_norm
    if task == PRESET_CLS:
        return lambda truth, scores: macro_f1(truth.astype(int), scores)
    return roc_auc
