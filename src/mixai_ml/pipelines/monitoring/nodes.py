"""Thin nodes over :mod:`mixai_ml.monitoring`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from mixai_ml.monitoring.alerts import threshold_alerts
from mixai_ml.monitoring.drift import DRIFT_SERIES_COLUMNS, drift_windows
from mixai_ml.monitoring.privacy import (
    PRIVACY_TASK,
    PrivacySettings,
    privacy_alerts,
    privacy_row,
)
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


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of ``frames`` in order, with the columns of all (empty ones add only columns)."""
    columns = list(dict.fromkeys(column for frame in frames for column in frame.columns))
    found = [frame for frame in frames if len(frame)]
    if not found:
        return pd.DataFrame(columns=columns)
    return pd.concat(found, ignore_index=True).reindex(columns=columns)


def summarise_windows(
    engine: Engine, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Window summary, alerts, the time series and the drift series, all ending at the
    reference time; the purge's figures (a summary row and alerts of their own, and the whole
    status)."""
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
    privacy = PrivacySettings.from_params(params)
    status = privacy.status(engine, settings.reference_time or pd.Timestamp(datetime.now(UTC)))
    return (
        _stack([summary, privacy_row(status)]),
        _stack([threshold_alerts(summary, settings), privacy_alerts(status, privacy)]),
        series,
        drift_series,
        status.as_dict(),
    )


def render_monitoring_report(
    summary: pd.DataFrame,
    alerts: pd.DataFrame,
    series: pd.DataFrame,
    drift_series: pd.DataFrame,
    privacy: dict[str, Any],
    params: dict[str, Any],
) -> tuple[str, Figure, Figure, dict[str, Any]]:
    """Markdown report, time-series and drift plots, and the JSON summary."""
    settings = MonitoringSettings.from_params(params)
    windows = summary[summary["task"] != PRIVACY_TASK]
    end = None if windows.empty else pd.Timestamp(windows["window_end"].iloc[0])
    privacy_settings = PrivacySettings.from_params(params)
    return (
        markdown_report(end, summary, alerts, settings, privacy, privacy_settings),
        timeseries_plot(series, settings.series_period),
        drift_plot(series, drift_series, settings.series_period, settings.feature_psi),
        summary_document(end, summary, alerts, settings, privacy),
    )
