"""Simulated online-prediction logs (`model_metrics`, `labels`) with known truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mixai_inference.tasks import TaskSpec, task_names, task_spec
from mixai_ml.datasets import AppTableDataset

PROJECT = Path(__file__).resolve().parents[2]
REFERENCE = pd.Timestamp("2026-04-30 12:00:00", tz="UTC")

# The simulated world, per task: the model serving at the end, when it replaced v1, which task
# has an error burst in the last hour, and median latencies (30 ms for the others).
CURRENT_VERSION = {"master_reg": "v2", "preset_cls": "v1", "align_conf": "v1"}
SWITCHED_DAYS_AGO = {"master_reg": 10}
BURST_TASKS = ("preset_cls",)
MEDIAN_LATENCY_MS = {"align_conf": 80.0}


def monitoring_parameters() -> dict[str, Any]:
    text = (PROJECT / "conf" / "base" / "parameters_monitoring.yml").read_text()
    return dict(yaml.safe_load(text)["monitoring"])


def _prediction(spec: TaskSpec, rng: np.random.Generator, truth: dict[str, Any]) -> dict[str, Any]:
    """A noisy prediction of ``truth`` in the served JSON shape of the task, by its kind."""
    if spec.kind == "regression":
        return {k: float(v + rng.normal(0.0, 0.5)) for k, v in truth.items()}
    key = str(spec.label_key)
    if spec.kind == "classification":
        chosen = truth[key] if rng.random() < 0.7 else str(rng.choice(spec.outputs))
        return {key: chosen, "scores": {name: float(name == chosen) for name in spec.outputs}}
    confidence = float(np.clip(0.75 * truth[key] + rng.normal(0.15, 0.2), 0.0, 1.0))
    return {"offset_ms": 0.0, "confidence": confidence}


def _label(spec: TaskSpec, rng: np.random.Generator) -> dict[str, Any]:
    """A random label of the task, by its kind."""
    if spec.kind == "regression":
        return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in spec.ranges.items()}
    key = str(spec.label_key)
    if spec.kind == "classification":
        return {key: str(rng.choice(spec.outputs))}
    return {"offset_ms": float(rng.normal(0.0, 30.0)), key: bool(rng.random() < 0.6)}


def simulate_logs(
    rng: np.random.Generator, n: int = 6000, days: int = 35
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``model_metrics`` and ``labels`` rows ending exactly at :data:`REFERENCE`.

    Three tasks; ``master_reg`` switched from ``v1`` to ``v2`` 10 days before the end; 5 % of
    requests fall back to the rules (``model_version`` NULL), 1 % fail, and ``preset_cls`` has
    an error burst in the last hour. Half of the successful predictions have a label.
    """
    tasks = rng.choice(list(task_names()), n)
    seconds = np.sort(rng.uniform(0.0, days * 86_400.0, n))
    recorded = REFERENCE - pd.to_timedelta(seconds, unit="s")
    recorded = recorded.where(np.arange(n) != 0, REFERENCE)  # the newest event is the reference
    rules = rng.random(n) < 0.05
    names = pd.Series(tasks)
    switched = names.map(SWITCHED_DAYS_AGO).fillna(np.inf).to_numpy() * 86_400
    versions = np.where(seconds > switched, "v1", names.map(CURRENT_VERSION)).astype(object)
    versions[rules] = None
    burst = names.isin(BURST_TASKS).to_numpy() & (seconds < 3600)
    ok = ~((rng.random(n) < 0.01) | (burst & (rng.random(n) < 0.5)))
    median_ms = names.map(MEDIAN_LATENCY_MS).fillna(30.0).to_numpy()
    latency = rng.lognormal(np.log(median_ms), 0.6) * np.where(rules, 0.2, 1.0)
    labelled = ok & (rng.random(n) < 0.5)
    predictions, labels = [], []
    for i, task in enumerate(tasks):
        spec = task_spec(str(task))
        truth = _label(spec, rng)
        predictions.append(json.dumps(_prediction(spec, rng, truth)) if ok[i] else None)
        if labelled[i]:
            labels.append(
                {
                    "job_id": f"job{i}",
                    "task": task,
                    "label": json.dumps(truth),
                    "created_at": recorded[i],
                }
            )
    metrics = pd.DataFrame(
        {
            "recorded_at": recorded,
            "task": tasks,
            "model_version": versions,
            "variant": None,
            "source": np.where(rules, "rules", "ml"),
            "latency_ms": latency,
            "ok": ok,
            "error": [None if good else "RuntimeError: boom" for good in ok],
            "user_id": [f"user{i % 97}" for i in range(n)],
            "job_id": [f"job{i}" for i in range(n)],
            "prediction": predictions,
        }
    )
    return metrics, pd.DataFrame(labels)


def save_logs(url: str, metrics: pd.DataFrame, labels: pd.DataFrame) -> None:
    for table, frame in (("model_metrics", metrics), ("labels", labels)):
        AppTableDataset(table_name=table, credentials={"con": url}, write_mode="replace_rows").save(
            frame
        )
