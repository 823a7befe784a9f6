"""Baselines on the same split as the models: scikit-learn and the production rules.

The rules are the very estimators the slim package falls back to
(:mod:`mixai_inference.rules`), so "better than the rules" means better than
what production would serve without the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mixai_inference.rules import Rules
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS, PRESETS


def make_sklearn_baseline(task: str, config: Mapping[str, Any]) -> BaseEstimator:
    """The scikit-learn baseline of ``task``.

    Args:
        task: ``master_reg`` (``ridge`` or ``hist_gradient_boosting``),
            ``preset_cls`` or ``align_conf`` (logistic regression).
        config: ``estimator`` and its keyword arguments, e.g.
            ``{"estimator": "ridge", "alpha": 1.0}``.
    """
    options = dict(config)
    estimator = options.pop("estimator", "ridge" if task == MASTER_REG else "logistic_regression")
    seed = options.pop("random_state", 0)
    if estimator == "ridge":
        return make_pipeline(StandardScaler(), Ridge(**options))
    if estimator == "hist_gradient_boosting":
        return MultiOutputRegressor(HistGradientBoostingRegressor(random_state=seed, **options))
    if estimator == "logistic_regression":
        return make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed, **options)
        )
    raise ValueError(
        f"unknown baseline estimator {estimator!r} for {task}; use ridge, "
        "hist_gradient_boosting or logistic_regression"
    )


def sklearn_predict(task: str, estimator: Any, inputs: np.ndarray) -> np.ndarray:
    """Baseline outputs in the model's output space.

    Returns:
        ``master_reg``: parameters ``(n, 8)``; ``preset_cls``: probabilities
        ``(n, 6)``; ``align_conf``: probability of a right alignment ``(n,)``.
    """
    if task == MASTER_REG:
        return np.asarray(estimator.predict(inputs), dtype=np.float64)
    probabilities = np.asarray(estimator.predict_proba(inputs), dtype=np.float64)
    if task == PRESET_CLS:
        return _full_class_probabilities(estimator, probabilities)
    return probabilities[:, list(estimator.classes_).index(1.0)]


def _full_class_probabilities(estimator: Any, probabilities: np.ndarray) -> np.ndarray:
    """Spread the columns of the classes seen in training over all six presets."""
    full = np.zeros((len(probabilities), len(PRESETS)))
    full[:, np.asarray(estimator.classes_, dtype=int)] = probabilities
    return full


def rules_predict(task: str, inputs: np.ndarray) -> np.ndarray:
    """The production rules' outputs, in the same shapes as :func:`sklearn_predict`."""
    estimators = Rules.default()
    if task == MASTER_REG:
        return np.asarray(estimators.master_params(inputs), dtype=np.float64)
    if task == PRESET_CLS:
        return np.asarray(estimators.preset_scores(inputs), dtype=np.float64)
    if task == ALIGN_CONF:
        return np.asarray(estimators.align_confidence(inputs), dtype=np.float64).reshape(-1)
    raise ValueError(f"unknown task {task!r}")
