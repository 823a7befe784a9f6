"""How well the out-of-distribution guard works: false alarms, detection of known shifts, and
whether it catches the inputs where the model is worse than the rules.

On the held-out (test) users: the guard's false-alarm rate on their jobs as they are; its
detection rate on each known shift of their audio (:mod:`mixai_ml.evaluation.shifts`); the
drift the monitor would see in each shifted population (:mod:`mixai_ml.monitoring.drift`);
and the model's and the rules' error on the inputs the guard passes and on those it flags,
over the jobs whose label still holds (unshifted jobs and label-preserving shifts; for
``align_conf`` every shift, the alignment being judged again against the true offset).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import ALIGN_TOLERANCE_MS, PRESET_CLS, TaskSpec, task_spec
from mixai_ml.evaluation.metrics import primary_metric_function
from mixai_ml.evaluation.shifts import LABEL_PRESERVING, time_factor
from mixai_ml.monitoring.drift import digit_counts, psi, top_drifting
from mixai_ml.parameters import settings_section
from mixai_ml.training.artifact import TrainedTask
from mixai_ml.training.baselines import rules_predict
from mixai_ml.training.data import decode_labels
from mixai_ml.training.models import predict
from mixai_ml.training.reference import served_outputs

UNSHIFTED = "none"


def row_loss(spec: TaskSpec, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each row's error ``(n,)``: mean |error| / range (regression), 1 when the top class is
    wrong (classification), the squared error (probability: a row's Brier score)."""
    if spec.kind == "regression":
        spans = np.array([high - low for low, high in spec.ranges.values()])
        return np.mean(np.abs(predicted - truth) / spans, axis=1)
    if spec.kind == "classification":
        return (np.argmax(predicted, axis=1) != truth.astype(int)).astype(float)
    return np.square(predicted[:, 0] - truth)


def _truth(spec: TaskSpec, rows: pd.DataFrame) -> np.ndarray:
    values = rows[list(spec.targets)].to_numpy(dtype=np.float64)
    return values if spec.kind == "regression" else values[:, 0]


def _shifted_rows(
    spec: TaskSpec,
    test: pd.DataFrame,
    probes: pd.DataFrame,
    labels: pd.DataFrame,
    shifts: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, pd.DataFrame, bool]]:
    """``(shift, rows with inputs and targets, whether the targets hold)`` per shift."""
    presets = decode_labels(labels, PRESET_CLS)[0].set_index("job_id")["preset"]
    true_offset = _true_offsets(labels, spec) if spec.source == "alignment" else None
    names = list(spec.input_names())
    targets = test[["job_id", *spec.targets]]
    result = []
    for name, shift in shifts.items():
        if shift["kind"] == "genre":
            chosen = {task_spec(PRESET_CLS).outputs.index(p) for p in shift["presets"]}
            rows = test[test["job_id"].map(presets).isin(chosen)]
            result.append((name, rows, True))
            continue
        rows = probes[probes["shift"] == name].dropna(subset=names)
        rows = rows[["job_id", *names]].merge(targets, on="job_id")
        if true_offset is not None:  # judged again: is the shifted estimate within tolerance?
            factor = time_factor(shift)
            error = rows["offset_ms"] * factor - rows["job_id"].map(true_offset).astype(float)
            rows = rows.assign(**{spec.targets[0]: (error.abs() <= ALIGN_TOLERANCE_MS) * 1.0})
            result.append((name, rows[error.notna()], True))
        else:
            result.append((name, rows, shift["kind"] in LABEL_PRESERVING))
    return result


def _true_offsets(labels: pd.DataFrame, spec: TaskSpec) -> pd.Series:
    """Job → the true vocal offset (ms) in the labels of ``spec``, an alignment task."""
    offsets = {}
    rows = labels.loc[labels["task"] == spec.name, ["job_id", "label"]]
    for job, text in rows.itertuples(index=False):
        try:
            offsets[str(job)] = float(json.loads(text)["offset_ms"])
        except (TypeError, ValueError, KeyError):
            continue
    return pd.Series(offsets, dtype=float)


def _errors(
    spec: TaskSpec, scored: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]
) -> dict[str, Any]:
    """Model vs rules inside (``ood`` false) and outside the guard."""
    flagged = np.concatenate([ood for ood, _, _ in scored])
    truth = np.concatenate([t for _, t, _ in scored])
    metric = primary_metric_function(spec)
    blocks = {}
    for name, chosen in (("in_distribution", ~flagged), ("out_of_distribution", flagged)):
        block: dict[str, Any] = {"n": int(chosen.sum())}
        for source in ("model", "rules") if chosen.any() else ():
            predicted = np.concatenate([outputs[source] for _, _, outputs in scored])[chosen]
            primary = predicted[:, 0] if spec.kind == "probability" else predicted
            block[source] = {
                "loss": float(np.mean(row_loss(spec, truth[chosen], predicted))),
                spec.primary_metric: metric(truth[chosen], primary),
            }
        blocks[name] = block
    return blocks


def ood_settings(params: Any) -> Mapping[str, Any]:
    """``evaluation.ood``, its keys checked: the probes' ``max_jobs``, ``shifts`` and
    ``n_workers`` (optional), and the guard's ``top_features``."""
    return settings_section(
        params,
        "evaluation.ood",
        required=("max_jobs", "shifts", "top_features"),
        optional=("n_workers",),
    )


def evaluate_guard(
    trained: TrainedTask,
    model_input: pd.DataFrame,
    probes: pd.DataFrame,
    labels: pd.DataFrame,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``ood`` block of a task in ``evaluation_metrics.json``.

    Args:
        trained: The task's new model, with its training reference.
        model_input: The task's model input (its ``test`` rows are the held-out jobs).
        probes: Features of shifted held-out audio (``job_id``, ``shift``, the mix's and
            the alignment's features), from :func:`mixai_ml.evaluation.probes.probe_features`.
        labels: The ``labels`` table (presets for ``genre`` shifts, true offsets).
        params: ``evaluation.ood`` (:func:`ood_settings`): ``shifts`` and ``top_features``.

    Returns:
        ``status`` and, with a reference: ``threshold``, ``target_false_alarm_rate``,
        ``false_alarm_rate`` and ``n_held_out``, per shift its ``n``, ``detection_rate``,
        ``input_psi_max`` and ``top_drifting_features``, and ``errors`` (model and rules,
        each with the mean ``loss`` per job and the primary metric, inside and outside the
        guard).
    """
    params = ood_settings(params)
    spec = task_spec(trained.task)
    reference = trained.reference
    if reference is None or trained.model is None:
        reason = trained.info.get("reference") or trained.reason or "no trained model"
        return {"status": "no_reference", "reason": str(reason)}
    names = list(spec.input_names())
    test = model_input[model_input["split"] == "test"]
    groups = [(UNSHIFTED, test, True)]
    groups += _shifted_rows(spec, test, probes, labels, params["shifts"])
    result: dict[str, Any] = {
        "status": "evaluated",
        "threshold": reference.threshold,
        "target_false_alarm_rate": reference.target_false_alarm_rate,
        "shifts": {},
    }
    scored = []
    for name, rows, known in groups:
        inputs = rows[names].to_numpy(dtype=np.float32)
        scores = reference.scores(inputs)
        drift = psi(digit_counts(reference.input_grid.bins(inputs.reshape(-1, len(names)))))
        rate = float(np.mean(scores > 1.0)) if len(rows) else None
        if name == UNSHIFTED:
            result["false_alarm_rate"], result["n_held_out"] = rate, len(rows)
        else:
            result["shifts"][name] = {
                "n": len(rows),
                "detection_rate": rate,
                "input_psi_max": float(np.nanmax(drift)) if len(rows) else None,
                "top_drifting_features": [
                    {"feature": feature, "psi": value}
                    for feature, value in top_drifting(drift, names, int(params["top_features"]))
                ],
            }
        if known and len(rows):
            outputs = {
                "model": served_outputs(spec, predict(trained.model, inputs)),
                "rules": np.asarray(rules_predict(spec, inputs), dtype=np.float64),
            }
            scored.append((scores > 1.0, _truth(spec, rows), outputs))
    result["errors"] = _errors(spec, scored)
    return result
