"""Offline metrics of a task, by its kind, from arrays of truths and predictions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

from mixai_inference.tasks import TaskSpec


def regression_metrics(
    truth: np.ndarray,
    predicted: np.ndarray,
    ranges: Mapping[str, tuple[float, float]],
) -> dict[str, Any]:
    """MAE, RMSE and R² per output, and ``mae_norm``.

    Args:
        truth, predicted: ``(n, len(ranges))`` in label units, in ``ranges`` order.
        ranges: Each output's (low, high) range (:attr:`TaskSpec.ranges
            <mixai_inference.tasks.TaskSpec.ranges>`).

    Returns:
        ``per_parameter`` (name -> mae, rmse, r2, mae_norm) and ``mae_norm``: the
        MAE divided by the output's range, averaged over the outputs.
    """
    per_parameter = {}
    for column, (name, (low, high)) in enumerate(ranges.items()):
        errors = predicted[:, column] - truth[:, column]
        per_parameter[name] = {
            "mae": float(np.mean(np.abs(errors))),
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "r2": float(skm.r2_score(truth[:, column], predicted[:, column])),
            "mae_norm": float(np.mean(np.abs(errors)) / (high - low)),
        }
    mae_norm = float(np.mean([values["mae_norm"] for values in per_parameter.values()]))
    return {"mae_norm": mae_norm, "per_parameter": per_parameter}


def mae_norm(
    truth: np.ndarray,
    predicted: np.ndarray,
    ranges: Mapping[str, tuple[float, float]],
) -> float:
    """Mean over outputs of MAE / range (the primary metric of a regression)."""
    spans = np.array([high - low for low, high in ranges.values()])
    return float(np.mean(np.mean(np.abs(predicted - truth), axis=0) / spans))


def classification_metrics(
    truth: np.ndarray, scores: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, top-2 accuracy and the confusion matrix.

    Args:
        truth: class indices ``(n,)`` into ``classes``.
        scores: ``(n, len(classes))`` class scores or probabilities.
        classes: The class names (:attr:`TaskSpec.outputs
            <mixai_inference.tasks.TaskSpec.outputs>`).
    """
    labels = np.arange(len(classes))
    predicted = scores.argmax(axis=1)
    top2 = np.argsort(-scores, axis=1)[:, :2]
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "macro_f1": macro_f1(truth, scores),
        "top2_accuracy": float(np.mean((top2 == truth[:, None]).any(axis=1))),
        "confusion_matrix": skm.confusion_matrix(truth, predicted, labels=labels).tolist(),
        "classes": list(classes),
    }


def macro_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """Macro-averaged F1 over the score columns' classes (absent classes count as 0).

    ``F1 = 2 TP / (2 TP + FP + FN)`` per class from counts (what scikit-learn's ``f1_score``
    with ``average="macro", zero_division=0`` gives, a hundred times faster for the bootstrap).
    """
    n_classes = scores.shape[1]
    truth = np.asarray(truth, dtype=int)
    predicted = scores.argmax(axis=1)
    hits = np.bincount(truth[predicted == truth], minlength=n_classes)
    sizes = np.bincount(truth, minlength=n_classes) + np.bincount(predicted, minlength=n_classes)
    f1 = np.divide(2.0 * hits, sizes, out=np.zeros(n_classes), where=sizes > 0)
    return float(f1.mean())


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
    """ROC-AUC, or NaN when the outcomes have a single class.

    The Mann-Whitney statistic from mid-ranks (ties count half), as scikit-learn's
    ``roc_auc_score``, without its validation overhead (the bootstrap calls it thousands of
    times).
    """
    positive = np.asarray(outcomes) == 1
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(probabilities)
    return float(
        (ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    )


def probability_metrics(
    outcomes: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """ROC-AUC, PR-AUC, Brier score, ECE and the reliability curve of a probability.

    Args:
        outcomes: 0/1 ``(n,)``: what happened (e.g. was the alignment right).
        probabilities: the predicted probability that it would ``(n,)``.
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
    spec: TaskSpec, truth: np.ndarray, predicted: np.ndarray, bins: int
) -> dict[str, Any]:
    """All metrics of a task by its kind (see the three functions above for shapes)."""
    if spec.kind == "regression":
        return regression_metrics(truth, predicted, spec.ranges)
    if spec.kind == "classification":
        return classification_metrics(truth.astype(int), predicted, spec.outputs)
    return probability_metrics(truth, predicted, bins)


def primary_metric_function(spec: TaskSpec) -> Callable[[np.ndarray, np.ndarray], float]:
    """The task's primary metric as a fast ``(truth, predicted) -> float`` for bootstrapping.

    Raises:
        ValueError: If the kind has no fast version of the spec's ``primary_metric``.
    """
    fast: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "mae_norm": lambda truth, predicted: mae_norm(truth, predicted, spec.ranges),
        "macro_f1": lambda truth, scores: macro_f1(truth.astype(int), scores),
        "roc_auc": roc_auc,
    }
    if spec.primary_metric not in fast:
        raise ValueError(
            f"{spec.name}: no bootstrap for primary metric {spec.primary_metric!r}; "
            f"use one of {sorted(fast)}"
        )
    return fast[spec.primary_metric]
