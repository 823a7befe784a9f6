"""Online accuracy: served predictions (``model_metrics.prediction``) against ``labels``.

A prediction is read with :meth:`TaskSpec.decode_prediction
<mixai_inference.tasks.TaskSpec.decode_prediction>` (a regression's values, the one-hot row
of the predicted class, or the ``confidence``), a label with :meth:`TaskSpec.decode_label
<mixai_inference.tasks.TaskSpec.decode_label>`. The metrics are the offline ones of
:mod:`mixai_ml.evaluation.metrics`, so online and offline numbers compare directly. Pairs
either side of which does not decode are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from mixai_inference.tasks import TaskSpec, task_names, task_spec
from mixai_ml.evaluation.metrics import macro_f1, probability_metrics, regression_metrics

METRICS_OF_KIND: Final = {
    "regression": ("mae", "rmse", "r2", "mae_norm"),
    "classification": ("macro_f1",),
    "probability": ("roc_auc", "brier", "ece"),
}
"""Online accuracy metrics by task kind (``mae``/``rmse``/``r2`` average the outputs)."""

ALL_METRICS: Final = tuple(dict.fromkeys(m for names in METRICS_OF_KIND.values() for m in names))


def accuracy_metrics() -> dict[str, tuple[str, ...]]:
    """Task → its online accuracy metrics, for every registered task."""
    return {task: METRICS_OF_KIND[task_spec(task).kind] for task in task_names()}


def _decoded(value: Any) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _pairs(
    spec: TaskSpec, predictions: Iterable[str], labels: Iterable[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The decoded (prediction, target) rows of the pairs that decode."""
    rows = []
    for prediction, label in zip(predictions, labels, strict=True):
        predicted = spec.decode_prediction(_decoded(prediction))
        target = spec.decode_label(_decoded(label))
        if predicted is not None and target is not None:
            rows.append((predicted, target))
    if not rows:
        return np.empty((0, len(spec.outputs))), np.empty((0, len(spec.targets)))
    predicted_rows, target_rows = zip(*rows, strict=True)
    return np.array(predicted_rows, dtype=float), np.array(target_rows, dtype=float)


def online_accuracy(
    task: str, predictions: Iterable[str], labels: Iterable[str]
) -> tuple[int, dict[str, float]]:
    """Accuracy of one task's served predictions.

    Args:
        task: A registered task; others give ``(0, {})``.
        predictions, labels: JSON texts, paired.

    Returns:
        ``(n, metrics)``: the number of usable pairs and the task's :data:`METRICS_OF_KIND`
        (NaN where undefined: R² of fewer than 2 jobs, ROC-AUC of a single class, ...).
    """
    if task not in task_names():
        return 0, {}
    spec = task_spec(task)
    names = METRICS_OF_KIND[spec.kind]
    predicted, truth = _pairs(spec, predictions, labels)
    n = len(predicted)
    if spec.kind == "regression":
        if n < 2:
            return n, dict.fromkeys(names, math.nan)
        result = regression_metrics(truth, predicted, spec.ranges)
        per_output = result["per_parameter"].values()
        return n, {
            **{m: float(np.mean([v[m] for v in per_output])) for m in ("mae", "rmse", "r2")},
            "mae_norm": float(result["mae_norm"]),
        }
    if n == 0:
        return 0, dict.fromkeys(names, math.nan)
    if spec.kind == "classification":
        return n, {"macro_f1": macro_f1(truth[:, 0].astype(int), predicted)}
    result = probability_metrics(truth[:, 0], predicted[:, 0])
    return n, {name: float(result[name]) for name in names}
