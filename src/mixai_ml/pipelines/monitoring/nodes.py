"""Thin nodes over :mod:`mixai_ml.monitoring`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from mixai_ml.monitoring.alerts import threshold_alerts
from mixai_ml.monitoring.drift import DRIFT_SERIES_COLUMNS, drift_windows
from mixai_ml.monitoring.report import (
    drift_plot,
    markdown_report,
    summary_document,
    timeseries_plot,
)
from mixai_ml.monitoring.windows import (
    SERIES_COLUMNS,
    SUMMARY_COLUMNS,
    MonitoringSettings,
    reference_time,
    time_series,
    window_summary,
)


def summarise_windows(
    engine: Engine, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Window summary, alerts, the time series and the drift series, all ending at the
    reference time."""
    settings = MonitoringSettings.from_params(params)
    end = reference_time(engine, settings)
    if end is None:
        summary = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        series = pd.DataFrame(columns=list(SERIES_COLUMNS))
        drift_series = pd.DataFrame(columns=list(DRIFT_SERIES_COLUMNS))
    else:
        drift, drift_series = drift_windows(engine, settings, end)
        summary = window_summary(engine, settings, end, drift)
        series = time_series(engine, settings, end)
    return summary, threshold_alerts(summary, settings), series, drift_series


def render_monitoring_report(
    summary: pd.DataFrame,
    alerts: pd.DataFrame,
    series: pd.DataFrame,
    drift_series: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[str, Figure, Figure, dict[str, Any]]:
    """Markdown report, time-series and drift plots, and the JSON summary."""
    settings = MonitoringSettings.from_params(params)
    end = None if summary.empty else pd.Timestamp(summary["window_end"].iloc[0])
    return (
        markdown_report(end, summary, alerts, settings),
        timeseries_plot(series, settings.series_period),
        drift_plot(series, drift_series, settings.series_period, settings.feature_psi),
        summary_document(end, summary, alerts, settings),
    )
