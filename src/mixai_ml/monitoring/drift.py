"""Input and prediction drift from the sketches of served answers (``input_sketch``).

A sketch (:func:`mixai_inference.ood.format_sketch`) holds each model input's and output's
decile among the model's training values, one digit each; every digit is equally likely for
training rows. So the drift of a feature over a window is the population stability index of
its digit counts against the uniform shares (0.1 each), with no need for the bundle:

``PSI = Σ_k (p_k − 0.1) · ln(p_k / 0.1)``, ``p_k`` the window's share of digit ``k``, smoothed
by half a count per digit (so that an empty bin stays finite). Common reading: below 0.1
stable, 0.1–0.25 moderate, above 0.25 a shift (N. Siddiqi, *Credit Risk Scorecards*, 2006).
With ``n`` rows and no drift the PSI is about ``9 / n`` (a chi-square with 9 degrees of
freedom over ``n``), hence the minimum count before an alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from mixai_inference.ood import SKETCH_BINS, decode_sketch
from mixai_inference.tasks import task_specs
from mixai_ml.monitoring import queries

if TYPE_CHECKING:
    from mixai_ml.monitoring.windows import MonitoringSettings

EXPECTED_SHARE = 1.0 / SKETCH_BINS


def psi(counts: np.ndarray) -> np.ndarray:
    """The PSI against uniform deciles of digit counts ``(..., 10)``; shape ``(...)``.

    NaN where there are no rows.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (counts + 0.5) / (total + 0.5 * SKETCH_BINS)
        value = ((share - EXPECTED_SHARE) * np.log(share / EXPECTED_SHARE)).sum(axis=-1)
    return np.where(total[..., 0] > 0, value, np.nan)


def digit_counts(digits: np.ndarray) -> np.ndarray:
    """Per column of ``digits (n, d)`` (values 0–9), the count of each digit: ``(d, 10)``."""
    d = digits.shape[1]
    flat = digits.astype(np.intp) + SKETCH_BINS * np.arange(d)
    return np.bincount(flat.ravel(), minlength=d * SKETCH_BINS).reshape(d, SKETCH_BINS)


def top_drifting(values: np.ndarray, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` names with the largest finite values, largest first."""
    order = [i for i in np.argsort(-np.nan_to_num(values, nan=-np.inf)) if np.isfinite(values[i])]
    return [(names[i], float(values[i])) for i in order[:k]]


DRIFT_COLUMNS = (
    "sketched",
    "input_psi_max",
    "input_drifted",
    "top_drift_features",
    "predicted",
    "prediction_psi_max",
    "top_drift_outputs",
)
"""What :func:`drift_windows` adds to each window × task × model version: sketches counted,
the largest PSI of an input, how many inputs drifted (PSI above ``drift.feature_psi``), the
most drifted ones, and the same for the model's outputs (its answers only)."""
DRIFT_SERIES_COLUMNS = ("period", "task", "feature", "psi", "sketched")


class _Decoded(NamedTuple):
    """The digits of a batch of sketches; a sketch of another shape (e.g. an older feature
    schema) has neither inputs nor outputs, one answered by the rules has no outputs."""

    inputs: np.ndarray
    has_inputs: np.ndarray
    outputs: np.ndarray
    has_outputs: np.ndarray

    @classmethod
    def of(cls, sketches: Iterable[Any], n_inputs: int, n_outputs: int) -> _Decoded:
        sketches = list(sketches)
        decoded = cls(
            np.zeros((len(sketches), n_inputs), dtype=np.uint8),
            np.zeros(len(sketches), dtype=bool),
            np.zeros((len(sketches), n_outputs), dtype=np.uint8),
            np.zeros(len(sketches), dtype=bool),
        )
        for row, sketch in enumerate(sketches):
            digits = decode_sketch(sketch) if isinstance(sketch, str) else None
            if digits is not None and len(digits[0]) == n_inputs:
                decoded.inputs[row], decoded.has_inputs[row] = digits[0], True
                if len(digits[1]) == n_outputs:
                    decoded.outputs[row], decoded.has_outputs[row] = digits[1], True
        return decoded


class _Counts:
    """Digit counts of a task's sketches: inputs, outputs and how many of each."""

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        self.inputs = np.zeros((n_inputs, SKETCH_BINS), dtype=np.int64)
        self.outputs = np.zeros((n_outputs, SKETCH_BINS), dtype=np.int64)
        self.n_inputs = self.n_outputs = 0

    def add(self, decoded: _Decoded, chosen: np.ndarray) -> None:
        inputs = decoded.inputs[chosen & decoded.has_inputs]
        outputs = decoded.outputs[chosen & decoded.has_outputs]
        self.inputs += digit_counts(inputs)
        self.outputs += digit_counts(outputs)
        self.n_inputs += len(inputs)
        self.n_outputs += len(outputs)


def _described(values: np.ndarray, names: Sequence[str], k: int) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in top_drifting(values, names, k))


def drift_windows(
    engine: Engine, settings: MonitoringSettings, end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Input and prediction drift from the sketches, in one pass over the longest window.

    Returns:
        Per window × task × model version the :data:`DRIFT_COLUMNS`; and per period × task
        the PSI of the task's ``drift.top_features`` most drifted inputs (the largest PSI in
        any window with ``min_sketched`` sketches) (:data:`DRIFT_SERIES_COLUMNS`).
    """
    specs = {spec.name: spec for spec in task_specs()}
    windows: dict[tuple[str, str, str], _Counts] = {}
    periods: dict[tuple[str, str], _Counts] = {}
    start = end - max(settings.windows.values())
    for chunk in queries.sketches(engine, start, end, settings.series_period):
        for task, rows in chunk.groupby("task", sort=False):
            spec = specs.get(str(task))
            if spec is None:
                continue
            shape = len(spec.input_names()), len(spec.outputs)
            decoded = _Decoded.of(rows["input_sketch"], *shape)
            versions = rows["model_version"].to_numpy()
            for name, length in settings.windows.items():
                recent = rows["recorded_at"].gt(end - length).to_numpy()
                for version in np.unique(versions):
                    key = (name, str(task), str(version))
                    counts = windows.setdefault(key, _Counts(*shape))
                    counts.add(decoded, recent & (versions == version))
            for period in rows["period"].unique():
                counts = periods.setdefault((str(period), str(task)), _Counts(*shape))
                counts.add(decoded, rows["period"].eq(period).to_numpy())
    summary = []
    drifts = {
        key: (counts, psi(counts.inputs), psi(counts.outputs)) for key, counts in windows.items()
    }
    k, limit = settings.top_features, settings.feature_psi
    for (window, task, version), (counts, inputs_psi, outputs_psi) in drifts.items():
        names, outputs = specs[task].input_names(), specs[task].outputs
        summary.append(
            {
                "window": window,
                "task": task,
                "model_version": version,
                "sketched": counts.n_inputs,
                "input_psi_max": np.nanmax(inputs_psi, initial=-np.inf)
                if counts.n_inputs
                else np.nan,
                "input_drifted": int(np.sum(inputs_psi > limit)),
                "top_drift_features": _described(inputs_psi, names, k),
                "predicted": counts.n_outputs,
                "prediction_psi_max": np.nanmax(outputs_psi, initial=-np.inf)
                if counts.n_outputs
                else np.nan,
                "top_drift_outputs": _described(outputs_psi, outputs, k),
            }
        )
    ranking = {}  # per task, each input's largest PSI in a window with enough sketches (or any)
    for task in {key[1] for key in drifts}:
        found = [
            (c.n_inputs >= settings.min_sketched, p)
            for (_, t, _), (c, p, _) in drifts.items()
            if t == task
        ]
        chosen = [p for enough, p in found if enough] or [p for _, p in found]
        ranking[task] = np.fmax.reduce(np.stack(chosen), axis=0)
    series = []
    for (period, task), counts in periods.items():
        names = specs[task].input_names()
        values = psi(counts.inputs)
        for index in np.argsort(-np.nan_to_num(ranking[task], nan=-np.inf))[:k]:
            series.append((period, task, names[index], float(values[index]), counts.n_inputs))
    return (
        pd.DataFrame(summary, columns=["window", "task", "model_version", *DRIFT_COLUMNS]),
        pd.DataFrame(series, columns=list(DRIFT_SERIES_COLUMNS)),
    )
