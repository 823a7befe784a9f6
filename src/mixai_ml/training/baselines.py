"""Baselines on the same split as the models: scikit-learn and the production rules.

The rules are the very estimators the slim package falls back to (each task's
:attr:`~mixai_inference.tasks.TaskSpec.rule`), so "better than the rules" means better
than what production would serve without the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mixai_inference.rules import Rules
from mixai_inference.tasks import TaskSpec

ESTIMATOR_KINDS: Final = {
    "ridge": ("regression",),
    "hist_gradient_boosting": ("regression",),
    "logistic_regression": ("classification", "probability"),
}
"""The scikit-learn baselines, and the task kinds each one fits."""


def make_sklearn_baseline(spec: TaskSpec, config: Mapping[str, Any]) -> BaseEstimator:
    """The scikit-learn baseline of a task.

    Args:
        spec: The task.
        config: ``estimator`` (a key of :data:`ESTIMATOR_KINDS` that fits the task's
            kind) and its keyword arguments, e.g. ``{"estimator": "ridge", "alpha": 1.0}``.

    Raises:
        ValueError: If the estimator is unknown or does not fit the task's kind.
    """
    options = dict(config)
    estimator = options.pop("estimator", None)
    if spec.kind not in ESTIMATOR_KINDS.get(estimator, ()):
        fitting = [name for name, kinds in ESTIMATOR_KINDS.items() if spec.kind in kinds]
        raise ValueError(
            f"baseline estimator {estimator!r} does not fit {spec.name} (a {spec.kind}); "
            f"set {spec.name}.model.baseline.estimator to one of {fitting}"
        )
    seed = options.pop("random_state", 0)
    if estimator == "ridge":
        return make_pipeline(StandardScaler(), Ridge(**options))
    if estimator == "hist_gradient_boosting":
        return MultiOutputRegressor(HistGradientBoostingRegressor(random_state=seed, **options))
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed, **options)
    )


def sklearn_predict(spec: TaskSpec, estimator: Any, inputs: np.ndarray) -> np.ndarray:
    """Baseline outputs in the model's output space: ``(n, len(spec.outputs))``.

    A regression's values, every class's probability (classes unseen in training get
    0), or the probability that the label's boolean is true.
    """
    if spec.kind == "regression":
        return np.asarray(estimator.predict(inputs), dtype=np.float64).reshape(len(inputs), -1)
    probabilities = np.asarray(estimator.predict_proba(inputs), dtype=np.float64)
    classes = np.asarray(estimator.classes_, dtype=int)
    if spec.kind == "classification":
        full = np.zeros((len(probabilities), len(spec.outputs)))
        full[:, classes] = probabilities
        return full
    return probabilities[:, list(classes).index(1)].reshape(-1, 1)


def rules_predict(spec: TaskSpec, inputs: np.ndarray) -> np.ndarray:
    """The production rules' outputs, in the same shape as :func:`sklearn_predict`."""
    return np.asarray(spec.rule(Rules.default(), inputs), dtype=np.float64)
