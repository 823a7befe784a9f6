"""Threshold alerts on the monitoring windows."""

from __future__ import annotations

import math

import pandas as pd

from mixai_ml.monitoring.windows import RULE_METRICS, MonitoringSettings

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
            observed = RULE_METRICS[rule.metric]
            observations = int(row[observed])
            value = float(row[rule.metric])
            if observations < settings.minimum(observed) or not math.isfinite(value):
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
