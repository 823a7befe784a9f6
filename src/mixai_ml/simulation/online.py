"""Online logs of the synthetic world: serving metrics and A/B experiments.

``model_metrics``: one row per online prediction for the jobs of the last ``online.days``
days (each job and task is predicted once, and again when the user re-runs it). Serving
history, per task: model ``1.0.0`` until ``rollout_days[0]`` days before ``world_end``,
then ``1.1.0`` for the users that :func:`mixai_inference.assign_variant` puts in
``treatment`` of ``rollout-<task>-1.1.0`` (the others stay on ``1.0.0`` as ``control``),
then ``1.1.0`` for everyone from ``rollout_days[1]`` days on. The ML path fails at
``error_rate`` (and far more often during the ``incident`` window of ``1.1.0``); a failure
is answered by the rules. Row semantics:

* ``source="ml"``, ``ok=1``, no ``error``: the model answered;
* ``source="rules"``, ``ok=0``, ``error="<Error>: ..."``, a prediction: the model failed
  and the rules answered (a fallback); ``model_version`` is the model that failed;
* ``source="rules"``, ``ok=0``, ``error``, no prediction: nothing could answer (the
  job's mix file is corrupt).

Every answer with a prediction also has the guard's ``ood_score``, ``ood`` and
``input_sketch``, with a drift episode in the last days (:mod:`~mixai_ml.simulation.guard`).

Predictions are what the model (or the rules) would say: the label plus an error whose
size depends on the version (recorded in the ground truth), so online accuracy can be
compared with ``labels``.

A/B experiments: every user of a synthetic population (``ab_users``, ids ``U000001`` …,
so the job users are part of it) is assigned with :func:`mixai_inference.assign_variant`.
Each assigned user has sessions in the experiment window with the metrics ``accepted``
(0/1), ``param_mae``, ``latency_ms`` and ``error`` (0/1), and one pre-exposure value of
``accepted__pre`` and ``param_mae__pre`` that shares the user's latent propensity (so
CUPED reduces variance). A variant multiplies each metric's expected value by
``1 + lift[metric]``; the true effects (the mean over the experiment's users of their
expected values under each variant) are returned for the ground truth.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from mixai_inference import assign_variant
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_NAMES,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
    task_spec,
)
from mixai_ml.dsp.mastering import clip_to_ranges
from mixai_ml.simulation.config import EXPERIMENTS, ONLINE, compact_json, stream
from mixai_ml.simulation.guard import guard_columns
from mixai_ml.simulation.styles import STYLES

MODEL_VERSIONS: Final = ("1.0.0", "1.1.0")
AB_METRICS: Final = ("accepted", "param_mae", "latency_ms", "error")
PRE_METRICS: Final = ("accepted", "param_mae")
_ERRORS: Final = (
    "TimeoutError: model inference exceeded 2000 ms",
    "RuntimeException: ONNX Runtime session failed (out of memory)",
    "FeatureError: feature vector has non-finite values",
)
_CORRUPT_ERROR: Final = "TruncatedFileError: mix.flac ends before its declared length"
_SPAN: Final = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])


# --- serving metrics ----------------------------------------------------------------------------


def _master_prediction(
    fact: pd.Series, source: str, version: str, quality: Mapping[str, Any], rng: np.random.Generator
) -> str:
    label = fact[[f"label_{name}" for name in MASTER_PARAM_NAMES]].to_numpy(dtype=np.float64)
    if source == "rules":  # style-agnostic: half-way to the natural preset, and noisier
        centre = 0.5 * label + 0.5 * STYLES["natural"].preset_vector()
        sd = quality["master_reg_error"]["rules"]
    else:
        centre, sd = label, quality["master_reg_error"][version]
    values = clip_to_ranges(centre + rng.normal(0.0, sd, label.size) * _SPAN)
    return compact_json(
        {name: round(float(v), 3) for name, v in zip(MASTER_PARAM_NAMES, values, strict=True)}
    )


def _preset_prediction(
    fact: pd.Series, source: str, version: str, quality: Mapping[str, Any], rng: np.random.Generator
) -> str:
    label = str(fact["preset_label"])
    accuracy = quality["preset_accuracy"]["rules" if source == "rules" else version]
    logits = rng.normal(0.0, 1.0, len(PRESETS))
    chosen = PRESETS.index(label) if rng.random() < accuracy else int(rng.integers(len(PRESETS)))
    logits[chosen] = logits.max() + rng.uniform(0.2, 2.0)
    scores = np.exp(logits - logits.max())
    scores /= scores.sum()
    return compact_json(
        {
            "preset": PRESETS[chosen],
            "scores": {p: round(float(s), 4) for p, s in zip(PRESETS, scores, strict=True)},
        }
    )


def _align_prediction(
    fact: pd.Series, source: str, version: str, quality: Mapping[str, Any], rng: np.random.Generator
) -> str:
    estimate, aligned_ok = float(fact["aligner_offset_ms"]), bool(fact["aligned_ok"])
    sharpness = quality["align_separation"]["rules" if source == "rules" else version]
    logit = sharpness * (1.0 if aligned_ok else -1.0) + rng.normal(0.0, 1.0)
    return compact_json(
        {"offset_ms": round(estimate, 2), "confidence": round(1.0 / (1.0 + math.exp(-logit)), 4)}
    )


@dataclass(frozen=True)
class _Schedule:
    """Which model version serves whom when, and when 1.1.0 has its incident."""

    rollout_start: pd.Timestamp
    rollout_end: pd.Timestamp
    incident_start: pd.Timestamp
    incident_end: pd.Timestamp

    @classmethod
    def of(cls, online: Mapping[str, Any], world_end: pd.Timestamp) -> _Schedule:
        def days_before(days: float) -> pd.Timestamp:
            return world_end - pd.Timedelta(days=float(days))

        incident_start = days_before(online["incident"]["day"])
        return cls(
            rollout_start=days_before(online["rollout_days"][0]),
            rollout_end=days_before(online["rollout_days"][1]),
            incident_start=incident_start,
            incident_end=incident_start + pd.Timedelta(hours=float(online["incident"]["hours"])),
        )

    def serving(self, at: pd.Timestamp, user_id: str, task: str) -> tuple[str, str | None]:
        """The model version and rollout variant serving ``user_id`` at ``at``."""
        old, new = MODEL_VERSIONS
        if at < self.rollout_start:
            return old, None
        if at >= self.rollout_end:
            return new, None
        variant = assign_variant(user_id, f"rollout-{task}-{new}", {"control": 50, "treatment": 50})
        return (new if variant == "treatment" else old), variant

    def in_incident(self, at: pd.Timestamp, version: str) -> bool:
        return version == MODEL_VERSIONS[1] and self.incident_start <= at < self.incident_end


_PREDICTIONS: Final = {
    MASTER_REG: _master_prediction,
    PRESET_CLS: _preset_prediction,
    ALIGN_CONF: _align_prediction,
}
"""The tasks the world's service answers, and how each answer is simulated from the truth."""


def model_metrics(
    online: Mapping[str, Any],
    seed: int,
    world_end: pd.Timestamp,
    jobs: pd.DataFrame,
    truth: pd.DataFrame,
) -> pd.DataFrame:
    """The ``model_metrics`` rows (see the module docstring).

    Args:
        online: the ``online`` parameters.
        seed: the world's seed.
        world_end: the world's reference time.
        jobs: ``job_id``, ``user_id``, ``created_at``.
        truth: per job ``label_<param>``, ``preset_label``, ``aligner_offset_ms``,
            ``aligned_ok`` and ``defect``.
    """
    rng = stream(seed, ONLINE)
    schedule = _Schedule.of(online, world_end)
    latency_ms, quality = online["latency_ms"], online["quality"]
    facts = truth.set_index("job_id")
    recent = jobs[jobs["created_at"] >= world_end - pd.Timedelta(days=float(online["days"]))]
    rows = []
    for job, task in itertools.product(recent.sort_values("job_id").itertuples(), _PREDICTIONS):
        fact = facts.loc[job.job_id]
        reruns = int(rng.poisson(float(online["requests_per_job"]) - 1.0))
        # the first request within minutes of the upload, re-runs within two days
        delays = np.sort(np.append(rng.uniform(5.0, 600.0), rng.uniform(600.0, 172800.0, reruns)))
        for delay in delays:
            at = min(job.created_at + pd.Timedelta(seconds=round(float(delay), 3)), world_end)
            version, variant = schedule.serving(at, job.user_id, task)
            incident = schedule.in_incident(at, version)
            error_rate = float(
                online["incident"]["error_rate"] if incident else online["error_rate"]
            )
            error: str | None = None
            source = "ml"
            latency = float(rng.lognormal(math.log(float(latency_ms[task])), 0.3))
            if fact["defect"] == "corrupt_mix" and task_spec(task).source == "mix":
                source, error, latency = "rules", _CORRUPT_ERROR, float(rng.uniform(2.0, 8.0))
            elif rng.random() < error_rate:
                source = "rules"
                error = str(rng.choice(_ERRORS[:1] if incident else _ERRORS))
                timeout = 2000.0 if error.startswith("TimeoutError") else 0.0
                latency = timeout + float(rng.lognormal(math.log(float(latency_ms["rules"])), 0.3))
            rows.append(
                {
                    "recorded_at": at,
                    "task": task,
                    "model_version": version,
                    "variant": variant,
                    "source": source,
                    "latency_ms": round(latency, 3),
                    "ok": error is None,
                    "error": error,
                    "user_id": job.user_id,
                    "job_id": job.job_id,
                    "prediction": None
                    if error == _CORRUPT_ERROR
                    else _PREDICTIONS[task](fact, source, version, quality, rng),
                }
            )
    frame = (
        pd.DataFrame(rows)
        .sort_values(["recorded_at", "job_id", "task"], kind="stable")
        .reset_index(drop=True)
    )
    return guard_columns(frame, online["guard"], seed, world_end)


# --- A/B experiments ----------------------------------------------------------------------------


def _expected_values(
    baseline: Mapping[str, float], latent: np.ndarray, lift: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Each user's expected value of every metric ``(users,)`` under ``lift``."""
    accept_logit = (
        math.log(baseline["accepted"] / (1.0 - baseline["accepted"])) + 0.9 * latent[:, 0]
    )
    return {
        "accepted": np.clip(
            (1.0 + lift.get("accepted", 0.0)) / (1.0 + np.exp(-accept_logit)), 0.001, 0.999
        ),
        "param_mae": baseline["param_mae"]
        * np.exp(0.35 * latent[:, 1] - 0.35**2 / 2.0)
        * (1.0 + lift.get("param_mae", 0.0)),
        "latency_ms": baseline["latency_ms"]
        * np.exp(0.2 * latent[:, 2] - 0.2**2 / 2.0)
        * (1.0 + lift.get("latency_ms", 0.0)),
        "error": np.full(len(latent), baseline["error"] * (1.0 + lift.get("error", 0.0))),
    }


def _draw(metric: str, expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One observation per expected value: Bernoulli for rates, log-normal around the mean."""
    if metric in ("accepted", "error"):
        return (rng.random(expected.size) < expected).astype(np.float64)
    spread = 0.25 if metric == "param_mae" else 0.3
    return expected * np.exp(rng.normal(0.0, spread, expected.size) - spread**2 / 2.0)


def ab_experiments(
    experiments: tuple[Mapping[str, Any], ...],
    baseline: Mapping[str, float],
    n_users: int,
    seed: int,
    world_end: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The ``ab_test_assignments`` and ``ab_test_metrics`` rows, and the true effects.

    Args:
        experiments: each with ``experiment_id``, ``weights``, ``coverage``, ``days``
            (start and end of exposure, in days before ``world_end``) and ``lift``
            (variant -> metric -> relative change of its expected value).
        baseline: per metric, the population's expected value under ``control``;
            ``sessions_mean``: mean sessions per user in an experiment.
        n_users: size of the population (``U000001`` …).
        seed: the world's seed.
        world_end: the world's reference time.

    Returns:
        Assignments, metrics, and per experiment the users per variant and, per
        non-control variant and metric, the true absolute and relative effect.
    """
    users = np.array([f"U{number:06d}" for number in range(1, n_users + 1)])
    latent = stream(seed, EXPERIMENTS).normal(size=(n_users, 3))
    assignments, metrics, truth = [], [], {}
    for number, experiment in enumerate(experiments):
        rng = stream(seed, EXPERIMENTS, number + 1)
        name = str(experiment["experiment_id"])
        weights = {str(k): float(v) for k, v in experiment["weights"].items()}
        variant = np.array(
            [assign_variant(user, name, weights, float(experiment["coverage"])) for user in users],
            dtype=object,
        )
        member = np.flatnonzero([v is not None for v in variant])
        start = world_end - pd.Timedelta(days=float(experiment["days"][0]))
        span_s = (float(experiment["days"][0]) - float(experiment["days"][1])) * 86400.0
        lifts = {str(v): dict(experiment.get("lift", {}).get(v, {})) for v in weights}
        expected = {v: _expected_values(baseline, latent[member], lifts[v]) for v in weights}
        control = expected["control"]
        truth[name] = {
            "users_per_variant": {v: int(np.sum(variant[member] == v)) for v in weights},
            "lift": lifts,
            "true_effects": {
                v: {
                    m: {
                        "abs": float(np.mean(expected[v][m] - control[m])),
                        "rel": float(np.mean(expected[v][m] - control[m]) / np.mean(control[m])),
                    }
                    for m in AB_METRICS
                }
                for v in weights
                if v != "control"
            },
        }
        sessions = 1 + rng.poisson(float(baseline["sessions_mean"]) - 1.0, member.size)
        owner = np.repeat(np.arange(member.size), sessions)
        at_s = rng.uniform(0.0, span_s, owner.size)
        first_s = np.full(member.size, np.inf)
        np.minimum.at(first_s, owner, at_s)
        assignments.append(
            pd.DataFrame(
                {
                    "experiment_id": name,
                    "user_id": users[member],
                    "variant": variant[member].astype(str),
                    "assigned_at": start + pd.to_timedelta(np.round(first_s, 3), unit="s"),
                }
            )
        )
        own = variant[member][owner]
        for metric in AB_METRICS:
            mean = np.zeros(owner.size)
            for v in weights:
                chosen = own == v
                mean[chosen] = expected[v][metric][owner[chosen]]
            metrics.append(
                pd.DataFrame(
                    {
                        "experiment_id": name,
                        "user_id": users[member][owner],
                        "metric": metric,
                        "value": np.round(_draw(metric, mean, rng), 6),
                        "recorded_at": start + pd.to_timedelta(np.round(at_s, 3), unit="s"),
                    }
                )
            )
        pre_sessions = 3 + rng.poisson(2.0, member.size)
        pre_owner = np.repeat(np.arange(member.size), pre_sessions)
        for metric in PRE_METRICS:
            draws = _draw(metric, control[metric][pre_owner], rng)
            value = np.bincount(pre_owner, weights=draws, minlength=member.size) / pre_sessions
            before = rng.uniform(86400.0, 14 * 86400.0, member.size)
            metrics.append(
                pd.DataFrame(
                    {
                        "experiment_id": name,
                        "user_id": users[member],
                        "metric": f"{metric}__pre",
                        "value": np.round(value, 6),
                        "recorded_at": start - pd.to_timedelta(np.round(before, 3), unit="s"),
                    }
                )
            )
    return pd.concat(assignments, ignore_index=True), pd.concat(metrics, ignore_index=True), truth
