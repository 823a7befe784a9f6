"""A model's training reference: what its inputs looked like, for the out-of-distribution
guard and the drift monitor (:class:`mixai_inference.ood.InputReference`).

The distance is a robust Mahalanobis distance:

1. each feature is centred on its median and scaled by its inter-quartile range
   (IQR / 1.349, the standard deviation of a normal variable; a feature with no spread
   falls back to its standard deviation, then to 1);
2. the covariance of the scaled rows is the Ledoit–Wolf shrinkage estimate (O. Ledoit,
   M. Wolf, "A well-conditioned estimator for large-dimensional covariance matrices",
   J. Multivariate Anal. 88, 2004), refitted after dropping the ``trim`` share of rows
   farthest from it (one reweighting step, as in the MCD's), so that a few broken
   uploads in the training data do not widen it;
3. the projection whitens it along its ``components.minor`` smallest and ``components.major``
   largest principal directions: ``d(x) = ‖(x − center) · projection‖``. The smallest ones
   catch inputs that break the features' correlations (noise, a low-pass), the largest ones
   inputs beyond the training range along the main ones (level); 32 directions of 175 keep
   the detection of the full distance at a fifth of its cost (docs/monitoring.md).

The threshold comes from rows the reference never saw: the rows are split by user into
``folds``; each fold is scored by a reference fitted on the others, and the threshold is
the conformal ``⌈(n + 1)(1 − α)⌉``-th smallest of those out-of-fold distances for the
target false-alarm rate ``α`` (V. Vovk et al., *Algorithmic Learning in a Random World*,
2005). The reference shipped is then fitted on every row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf

from mixai_inference.ood import SKETCH_BINS, Grid, InputReference
from mixai_inference.tasks import TaskSpec
from mixai_ml.parameters import settings_section

METHOD = (
    "robust Mahalanobis: median/IQR scaling, trimmed Ledoit-Wolf covariance, "
    "smallest and largest principal directions"
)
_ATOM_SHARE = 0.02
"""A value shared by at least this share of the rows is an atom of the sketch grid."""


def robust_scaling(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale (IQR / 1.349) of each column of ``rows (n, d)``."""
    median = np.median(rows, axis=0)
    q1, q3 = np.percentile(rows, [25.0, 75.0], axis=0)
    scale = (q3 - q1) / 1.349
    spread = rows.std(axis=0)
    scale = np.where(scale > 1e-9 * np.maximum(np.abs(median), 1.0), scale, spread)
    return median, np.where(scale > 1e-12, scale, 1.0)


def whitening(
    rows: np.ndarray, trim: float, minor: int | None = None, major: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``center (d,)`` and ``projection (d, k)`` of the distance (module documentation).

    Args:
        rows: Training inputs ``(n, d)``.
        trim: Share of the farthest rows left out of the refit, in [0, 0.5).
        minor, major: The smallest and largest principal directions kept (``minor=None``:
            every direction, the full Mahalanobis distance).
    """
    median, scale = robust_scaling(rows)
    scaled = (rows - median) / scale
    keep = np.ones(len(scaled), dtype=bool)
    for _ in range(2 if trim > 0 else 1):
        estimate = LedoitWolf(assume_centered=False).fit(scaled[keep])
        eigenvalues, vectors = np.linalg.eigh(estimate.covariance_)
        inverse_root = vectors / np.sqrt(np.maximum(eigenvalues, 1e-12))
        distances = np.square((scaled - estimate.location_) @ inverse_root).sum(axis=1)
        keep = distances <= np.quantile(distances, 1.0 - trim)
    center = median + scale * estimate.location_
    projection = inverse_root / scale[:, None]  # eigh: ascending eigenvalues
    if minor is not None and minor + major < projection.shape[1]:
        kept = np.r_[0:minor, projection.shape[1] - major : projection.shape[1]]
        projection = projection[:, kept]
    return center, projection


def _distances(center: np.ndarray, projection: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square((rows - center) @ projection).sum(axis=1))


def user_folds(groups: Sequence[Any], folds: int) -> np.ndarray:
    """A fold number per row; every row of a user in the same fold (sizes within one user)."""
    users, inverse, counts = np.unique(
        np.asarray(groups, dtype=str), return_inverse=True, return_counts=True
    )
    load = np.zeros(folds, dtype=int)
    fold_of_user = np.empty(len(users), dtype=int)
    for user in np.argsort(-counts, kind="stable"):  # the biggest users first, to the lightest fold
        fold_of_user[user] = int(np.argmin(load))
        load[fold_of_user[user]] += counts[user]
    return fold_of_user[inverse]


def calibrated_threshold(
    rows: np.ndarray, groups: Sequence[Any], alpha: float, folds: int, **fit: Any
) -> tuple[float, np.ndarray]:
    """The conformal threshold of out-of-fold distances for the false-alarm rate ``alpha``.

    Args:
        fit: :func:`whitening`'s ``trim``, ``minor`` and ``major``.

    Returns:
        The threshold and every row's out-of-fold distance ``(n,)``.
    """
    fold = user_folds(groups, folds)
    held_out = np.empty(len(rows))
    for k in range(folds):
        center, projection = whitening(rows[fold != k], **fit)
        held_out[fold == k] = _distances(center, projection, rows[fold == k])
    n = len(held_out)
    rank = min(n, math.ceil((n + 1) * (1.0 - alpha)))
    return float(np.sort(held_out)[rank - 1]), held_out


def grid(values: np.ndarray) -> Grid:
    """The sketch grid of ``values (n, m)``: deciles and atoms (:class:`Grid`)."""
    levels = np.arange(1, SKETCH_BINS) / SKETCH_BINS
    edges = np.quantile(values, levels, axis=0, method="inverted_cdf").T
    atoms = []
    n = len(values)
    for index, column in enumerate(np.asarray(values, dtype=np.float32).T):
        unique, counts = np.unique(column, return_counts=True)
        below = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for value, start, count in zip(unique, below, counts, strict=True):
            if count >= _ATOM_SHARE * n:
                atoms.append((index, float(value), start / n, (start + count) / n))
    return Grid(
        np.asarray(edges, dtype=np.float64), np.asarray(atoms, dtype=np.float64).reshape(-1, 4)
    )


def served_outputs(spec: TaskSpec, outputs: np.ndarray) -> np.ndarray:
    """A model's raw outputs ``(n, m)`` as the predictor serves them (:meth:`TaskSpec.finish
    <mixai_inference.tasks.TaskSpec.finish>`: clipped, renormalised)."""
    raw = np.asarray(outputs, dtype=np.float64)
    rows = []
    for values in raw.tolist():
        finished = spec.finish(values)
        rows.append(values if finished is None else finished)
    return np.asarray(rows, dtype=np.float64).reshape(raw.shape)


def fit_reference(
    inputs: np.ndarray,
    outputs: np.ndarray,
    groups: Sequence[Any],
    input_names: Sequence[str],
    output_names: Sequence[str],
    params: Mapping[str, Any],
) -> InputReference:
    """A model's training reference.

    Args:
        inputs: The model's training inputs ``(n, d)`` (train and validation rows: the
            calibration is out of fold).
        outputs: The model's outputs on them ``(n, m)``, as served.
        groups: The user of each row (folds never split a user).
        input_names, output_names: Of the model's inputs and outputs.
        params: ``target_false_alarm_rate``, ``folds``, ``trim`` and ``components``
            (``minor`` and ``major``: the principal directions kept).

    Raises:
        ValueError: With fewer rows than ``(1 − α) / α`` (α the target false-alarm rate),
            fewer users than folds, or fewer than 2 folds.
    """
    where = "training.reference"
    params = settings_section(
        params, where, required=("target_false_alarm_rate", "folds", "trim", "components")
    )
    components = settings_section(
        params["components"], f"{where}.components", required=("minor", "major")
    )
    alpha, folds = float(params["target_false_alarm_rate"]), int(params["folds"])
    fit: dict[str, Any] = {
        "trim": float(params["trim"]),
        "minor": int(components["minor"]),
        "major": int(components["major"]),
    }
    rows = np.asarray(inputs, dtype=np.float64)
    n_users = len(set(map(str, groups)))
    # below (1 - alpha) / alpha held-out rows no distance has a (1 - alpha) conformal rank
    needed = math.ceil((1.0 - alpha) / alpha) if 0 < alpha < 1 else math.inf
    if len(rows) < needed or n_users < folds or folds < 2:
        raise ValueError(
            f"a reference at a {alpha:.1%} false-alarm rate needs at least {needed} rows and "
            f"{max(folds, 2)} users (folds >= 2), got {len(rows)} rows of {n_users} users"
        )
    threshold, held_out = calibrated_threshold(rows, groups, alpha, folds, **fit)
    center, projection = whitening(rows, **fit)
    return InputReference(
        input_names=tuple(input_names),
        output_names=tuple(output_names),
        center=center,
        projection=projection,
        threshold=threshold,
        target_false_alarm_rate=alpha,
        input_grid=grid(rows),
        output_grid=grid(np.asarray(outputs, dtype=np.float64)),
        info={
            "method": METHOD,
            "rows": len(rows),
            "users": n_users,
            "folds": folds,
            **fit,
            "out_of_fold_false_alarm_rate": float(np.mean(held_out > threshold)),
        },
    )
