"""Online accuracy: served predictions (``model_metrics.prediction``) against ``labels``.

Prediction JSON per task: ``master_reg`` the eight mastering parameters (CONTRACTS §5) →
floats; ``preset_cls`` ``{"preset": name, "scores": {name: prob}}``; ``align_conf``
``{"offset_ms": float, "confidence": float}``. Labels: the same parameters; ``{"preset": name}``;
``{"offset_ms": float, "aligned_ok": bool}``. The metrics are the offline ones of
:mod:`mixai_ml.evaluation.metrics`, so online and offline numbers compare directly. Rows whose
JSON lacks a needed key are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np

from mixai_inference.tasks import ALIGN_CONF, MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS, PRESETS
from mixai_ml.evaluation.metrics import macro_f1, probability_metrics, regression_metrics

ACCURACY_METRICS: dict[str, tuple[str, ...]] = {
    MASTER_REG: ("mae", "rmse", "r2", "mae_norm"),
    PRESET_CLS: ("macro_f1",),
    ALIGN_CONF: ("roc_auc", "brier", "ece"),
}
"""Online accuracy metrics per task (``mae``/``rmse``/``r2`` average the eight parameters)."""


def _pairs(predictions: Iterable[str], labels: Iterable[str]) -> list[tuple[dict, dict]]:
    pairs = []
    for prediction, label in zip(predictions, labels, strict=True):
        try:
            pairs.append((json.loads(prediction), json.loads(label)))
        except (TypeError, ValueError):
            continue
    return pairs


def _regression(pairs: list[tuple[dict, dict]]) -> tuple[int, dict[str, float]]:
    rows = [
        ([p[k] for k in MASTER_PARAM_NAMES], [t[k] for k in MASTER_PARAM_NAMES])
        for p, t in pairs
        if all(k in p and k in t for k in MASTER_PARAM_NAMES)
    ]
    if len(rows) < 2:
        return len(rows), dict.fromkeys(ACCURACY_METRICS[MASTER_REG], math.nan)
    predicted, truth = (np.array(side, dtype=float) for side in zip(*rows, strict=True))
    result = regression_metrics(truth, predicted)
    per_parameter = result["per_parameter"].values()
    return len(rows), {
        **{m: float(np.mean([v[m] for v in per_parameter])) for m in ("mae", "rmse", "r2")},
        "mae_norm": float(result["mae_norm"]),
    }


def _classification(pairs: list[tuple[dict, dict]]) -> tuple[int, dict[str, float]]:
    index = {name: i for i, name in enumerate(PRESETS)}
    rows = [
        (index[p["preset"]], index[t["preset"]])
        for p, t in pairs
        if p.get("preset") in index and t.get("preset") in index
    ]
    if not rows:
        return 0, {"macro_f1": math.nan}
    predicted, truth = (np.array(side) for side in zip(*rows, strict=True))
    return len(rows), {"macro_f1": macro_f1(truth, np.eye(len(PRESETS))[predicted])}


def _probability(pairs: list[tuple[dict, dict]]) -> tuple[int, dict[str, float]]:
    rows = [
        (float(p["confidence"]), float(bool(t["aligned_ok"])))
        for p, t in pairs
        if "confidence" in p and "aligned_ok" in t
    ]
    names = ACCURACY_METRICS[ALIGN_CONF]
    if not rows:
        return 0, dict.fromkeys(names, math.nan)
    probabilities, outcomes = (np.array(side) for side in zip(*rows, strict=True))
    result = probability_metrics(outcomes, probabilities)
    return len(rows), {name: float(result[name]) for name in names}


_BY_TASK = {MASTER_REG: _regression, PRESET_CLS: _classification, ALIGN_CONF: _probability}


def online_accuracy(
    task: str, predictions: Iterable[str], labels: Iterable[str]
) -> tuple[int, dict[str, float]]:
    """Accuracy of one task's served predictions.

    Args:
        task: ``master_reg``, ``preset_cls`` or ``align_conf``.
        predictions, labels: JSON texts, paired.

    Returns:
        ``(n, metrics)``: the number of usable pairs and :data:`ACCURACY_METRICS` of the task
        (NaN where undefined: R² of fewer than 2 jobs, ROC-AUC of a single class, ...). Other
        tasks give ``(0, {})``.
    """
    if task not in _BY_TASK:
        return 0, {}
    return _BY_TASK[task](_pairs(predictions, labels))
