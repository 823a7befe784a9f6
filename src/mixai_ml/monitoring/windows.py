"""Monitoring windows (1 h, 1 d, 7 d, 30 d by default) ending at a reference time.

Per window × task × model version: request count, mean / p50 / p95 / p99 latency, error rate,
fallback rate (share served by the rules), the share of out-of-distribution answers, input
and prediction drift (:mod:`~mixai_ml.monitoring.drift`) and online accuracy where labels
exist. Counts and
means come from SQL; latency quantiles from a SQL histogram with ``latency_resolution_ms`` wide
buckets (exact to half a bucket, whatever the table size); accuracy from the labelled predictions
of the window (few rows: one per labelled job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from mixai_ml.datasets.sql import utc_timestamp
from mixai_ml.monitoring import queries
from mixai_ml.monitoring.accuracy import ALL_METRICS, accuracy_metrics, online_accuracy
from mixai_ml.monitoring.drift import DRIFT_COLUMNS, drift_windows
from mixai_ml.parameters import settings_section

QUANTILES = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
SUMMARY_COLUMNS = (
    "window",
    "window_start",
    "window_end",
    "task",
    "model_version",
    "requests",
    "latency_mean_ms",
    *QUANTILES,
    "error_rate",
    "fallback_rate",
    "scored",
    "ood_rate",
    *DRIFT_COLUMNS,
    "labelled",
    *ALL_METRICS,
)
SERIES_COLUMNS = (
    "period",
    "task",
    "requests",
    "latency_mean_ms",
    "latency_p95_ms",
    "error_rate",
    "fallback_rate",
    "ood_rate",
)


RULE_METRICS: Final = {
    **dict.fromkeys(
        ("requests", "latency_mean_ms", *QUANTILES, "error_rate", "fallback_rate"), "requests"
    ),
    "ood_rate": "scored",
    "input_psi_max": "sketched",
    "input_drifted": "sketched",
    "prediction_psi_max": "predicted",
    **dict.fromkeys(ALL_METRICS, "labelled"),
}
"""What a threshold rule may watch → the count of events behind it: a window with fewer than
``min_requests`` requests, ``min_labelled`` labelled or ``min_sketched`` scored answers raises
nothing."""


@dataclass(frozen=True)
class Rule:
    """A threshold: alert when ``metric`` is above ``max`` (or below ``min``)."""

    metric: str
    bound: str
    limit: float


@dataclass(frozen=True)
class MonitoringSettings:
    """The ``monitoring`` parameters (``parameters_monitoring.yml``), validated."""

    reference_time: pd.Timestamp | None
    windows: Mapping[str, pd.Timedelta]
    latency_resolution_ms: float
    series_period: queries.Period
    min_requests: int
    min_labelled: int
    min_sketched: int
    """Drift and out-of-distribution rules need this many scored answers."""
    rules: Mapping[str, tuple[Rule, ...]]
    """Task (or ``all_tasks``) → its threshold rules."""
    feature_psi: float
    """An input or output has drifted above this PSI (``drift.feature_psi``)."""
    top_features: int
    """Drifted inputs and outputs named per window (``drift.top_features``)."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MonitoringSettings:
        """Settings from the ``monitoring`` parameters.

        Raises:
            ValueError: A value out of range, a missing or unknown key, or a rule on a task or
                metric the monitoring does not know (it would never fire); the message names
                the key.
        """
        params = settings_section(
            params,
            "monitoring",
            required=(
                "reference_time",
                "windows",
                "latency_resolution_ms",
                "series_period",
                "drift",
                "thresholds",
            ),
            optional=("privacy",),  # read by PrivacySettings
        )
        reference = params["reference_time"]
        windows = {
            str(name): pd.Timedelta(str(length)) for name, length in params["windows"].items()
        }
        if not windows or any(length <= pd.Timedelta(0) for length in windows.values()):
            raise ValueError(f"monitoring.windows must be positive durations, got {windows}")
        resolution = float(params["latency_resolution_ms"])
        if not resolution > 0:
            raise ValueError(f"monitoring.latency_resolution_ms must be > 0, got {resolution}")
        period = params["series_period"]
        if period not in ("day", "hour"):
            raise ValueError(f"monitoring.series_period must be day or hour, got {period!r}")
        drift = settings_section(
            params["drift"], "monitoring.drift", required=("feature_psi", "top_features")
        )
        thresholds = settings_section(
            params["thresholds"],
            "monitoring.thresholds",
            required=("min_requests", "min_labelled", "min_sketched"),
            optional=("rules",),
        )
        return cls(
            reference_time=None if reference is None else utc_timestamp(reference),
            windows=windows,
            latency_resolution_ms=resolution,
            series_period=cast(queries.Period, period),
            min_requests=int(thresholds["min_requests"]),
            min_labelled=int(thresholds["min_labelled"]),
            min_sketched=int(thresholds["min_sketched"]),
            rules=_rules(thresholds.get("rules")),
            feature_psi=float(drift["feature_psi"]),
            top_features=int(drift["top_features"]),
        )

    def minimum(self, observed: str) -> int:
        """The fewest ``observed`` events (a :data:`RULE_METRICS` count) a rule needs."""
        return {"requests": self.min_requests, "labelled": self.min_labelled}.get(
            observed, self.min_sketched
        )

    def rules_for(self, task: str) -> tuple[Rule, ...]:
        """The rules of every task, then those of ``task``."""
        return self.rules.get("all_tasks", ()) + self.rules.get(task, ())


def _rules(raw: Any) -> dict[str, tuple[Rule, ...]]:
    """``thresholds.rules``: scope (``all_tasks`` or a registered task) → metric → bounds."""
    where = "monitoring.thresholds.rules"
    reported = accuracy_metrics()
    scopes = settings_section(raw, where, optional=("all_tasks", *reported), noun="task")
    rules: dict[str, tuple[Rule, ...]] = {}
    every_task = {metric for names in reported.values() for metric in names}
    for scope, metrics in scopes.items():
        # an accuracy metric that no task in the scope reports would never fire
        accuracy = reported.get(scope, every_task)
        watched = [m for m in RULE_METRICS if m not in ALL_METRICS or m in accuracy]
        checked = settings_section(metrics, f"{where}.{scope}", optional=watched, noun="metric")
        scoped = []
        for metric, bounds in checked.items():
            limits = settings_section(
                bounds, f"{where}.{scope}.{metric}", optional=("max", "min"), noun="bound"
            )
            if not limits:
                raise ValueError(f"{where}.{scope}.{metric}: set max or min")
            scoped += [
                Rule(str(metric), str(bound), float(limit)) for bound, limit in limits.items()
            ]
        rules[str(scope)] = tuple(scoped)
    return rules


def histogram_quantiles(
    histogram: pd.DataFrame, keys: Sequence[str], quantiles: Mapping[str, float], width: float
) -> pd.DataFrame:
    """Quantiles per group from bucket counts (``bucket`` k covers ``[k·w, (k+1)·w)``).

    The ``q`` quantile is the midpoint of the bucket holding the ``ceil(q·n)``-th smallest value,
    so it is within ``w/2`` of ``numpy.quantile(..., method="inverted_cdf")``.
    """
    if histogram.empty:
        return pd.DataFrame(columns=[*keys, *quantiles])
    ordered = histogram.sort_values([*keys, "bucket"])
    grouped = ordered.groupby(list(keys), sort=False, dropna=False)
    cumulative = grouped["count"].cumsum()
    total = grouped["count"].transform("sum")
    result = ordered[list(keys)].drop_duplicates().set_index(list(keys))
    for name, q in quantiles.items():
        rank = np.ceil(q * total.to_numpy()).clip(min=1)
        reached = ordered.loc[cumulative.to_numpy() >= rank]
        first = reached.groupby(list(keys), sort=False, dropna=False)["bucket"].first()
        result[name] = (first.astype(float) + 0.5) * width
    return result.reset_index()


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    requests = frame["requests"].astype(float)
    frame["error_rate"] = frame["errors"].astype(float) / requests
    frame["fallback_rate"] = frame["fallbacks"].astype(float) / requests
    scored = frame["scored"].astype(float).where(frame["scored"] > 0)
    frame["ood_rate"] = frame["out_of_distribution"].astype(float) / scored
    return frame.drop(columns=["errors", "fallbacks", "out_of_distribution"])


def _accuracy(pairs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, version), group in pairs.groupby(["task", "model_version"], sort=True):
        labelled, metrics = online_accuracy(str(task), group["prediction"], group["label"])
        rows.append({"task": task, "model_version": version, "labelled": labelled, **metrics})
    return pd.DataFrame(rows, columns=["task", "model_version", "labelled", *ALL_METRICS])


def reference_time(engine: Engine, settings: MonitoringSettings) -> pd.Timestamp | None:
    """The configured reference time, else the newest event (``None`` for an empty table)."""
    return settings.reference_time or queries.latest_event(engine)


def window_summary(
    engine: Engine,
    settings: MonitoringSettings,
    end: pd.Timestamp,
    drift: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per window × task × model version with traffic (:data:`SUMMARY_COLUMNS`).

    Args:
        drift: :func:`~mixai_ml.monitoring.drift.drift_windows`'s summary, if the caller
            has it already; otherwise computed here.
    """
    if drift is None:
        drift = drift_windows(engine, settings, end)[0]
    longest = max(settings.windows.values())
    pairs = queries.labelled_predictions(engine, end - longest, end)
    frames = []
    for name, length in settings.windows.items():
        start = end - length
        counts = queries.window_counts(engine, start, end)
        if counts.empty:
            continue
        keys = ["task", "model_version"]
        latency = histogram_quantiles(
            queries.latency_histogram(engine, start, end, settings.latency_resolution_ms),
            keys,
            QUANTILES,
            settings.latency_resolution_ms,
        )
        accuracy = _accuracy(pairs[pairs["recorded_at"] > start])
        frame = (
            _rates(counts)
            .merge(latency, on=keys, how="left")
            .merge(accuracy, on=keys, how="left")
            .merge(drift[drift["window"] == name].drop(columns="window"), on=keys, how="left")
        )
        for column in ("labelled", "sketched", "predicted", "input_drifted"):
            frame[column] = frame[column].fillna(0).astype(int)
        frames.append(frame.assign(window=name, window_start=start, window_end=end))
    if not frames:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    summary = pd.concat(frames, ignore_index=True).reindex(columns=list(SUMMARY_COLUMNS))
    return summary.sort_values(["task", "model_version"], kind="stable").reset_index(drop=True)


def time_series(engine: Engine, settings: MonitoringSettings, end: pd.Timestamp) -> pd.DataFrame:
    """Per period (day or hour, UTC) × task over the longest window (:data:`SERIES_COLUMNS`)."""
    start = end - max(settings.windows.values())
    counts = queries.period_counts(engine, start, end, settings.series_period)
    if counts.empty:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    p95 = histogram_quantiles(
        queries.latency_histogram(
            engine, start, end, settings.latency_resolution_ms, settings.series_period
        )
        .drop(columns="model_version")
        .groupby(["period", "task", "bucket"], as_index=False)["count"]
        .sum(),
        ["period", "task"],
        {"latency_p95_ms": 0.95},
        settings.latency_resolution_ms,
    )
    series = _rates(counts).merge(p95, on=["period", "task"], how="left")
    stamp = series["period"].astype(str).str.replace("T", " ")
    series["period"] = pd.to_datetime(
        stamp + (":00" if settings.series_period == "hour" else ""), utc=True
    )
    return series.reindex(columns=list(SERIES_COLUMNS)).sort_values(["task", "period"])
