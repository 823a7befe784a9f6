"""Threshold alerts on the monitoring windows."""

from __future__ import annotations

import math

import pandas as pd

from mixai_ml.monitoring.accuracy import ALL_METRICS
from mixai_ml.monitoring.windows import MonitoringSettings

ALERT_COLUMNS = (
    "window",
    "task",
    "model_version",
    "metric",
    "value",
    "bound",
    "limit",
    "observations",
)
_ACCURACY = set(ALL_METRICS)
_DRIFT = {
    "ood_rate": "scored",
    "input_psi_max": "sketched",
    "input_drifted": "sketched",
    "prediction_psi_max": "predicted",
}
"""Drift metrics and the count of answers behind each."""


def threshold_alerts(summary: pd.DataFrame, settings: MonitoringSettings) -> pd.DataFrame:
    """Every window × task × model version whose value crosses a configured threshold.

    Rules come from ``thresholds.rules.all_tasks`` plus ``thresholds.rules.<task>``. A window
    with fewer than ``min_requests`` requests (``min_labelled`` labelled predictions for the
    accuracy metrics, ``min_sketched`` scored answers for the drift metrics) raises nothing:
    too few events to tell noise from a problem.
    """
    alerts = []
    for row in summary.to_dict("records"):
        for rule in settings.rules_for(str(row["task"])):
            if rule.metric in _ACCURACY:
                observed, needed = "labelled", settings.min_labelled
            elif rule.metric in _DRIFT:
                observed, needed = _DRIFT[rule.metric], settings.min_sketched
            else:
                observed, needed = "requests", settings.min_requests
            observations = int(row[observed])
            value = float(row.get(rule.metric, math.nan))
            if observations < needed or not math.isfinite(value):
                continue
            crossed = value > rule.limit if rule.bound == "max" else value < rule.limit
            if crossed:
                alerts.append(
                    {
                        "window": row["window"],
                        "task": row["task"],
                        "model_version": row["model_version"],
                        "metric": rule.metric,
                        "value": value,
                        "bound": rule.bound,
                        "limit": rule.limit,
                        "observations": observations,
                    }
                )
    return pd.DataFrame(alerts, columns=list(ALERT_COLUMNS))
