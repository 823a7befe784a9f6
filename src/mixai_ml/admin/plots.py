"""The console's plots, drawn on the server as PNG by the reports' own plotting functions."""

from __future__ import annotations

import io
from dataclasses import replace

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.report import experiment_figure
from mixai_ml.monitoring.queries import Period
from mixai_ml.monitoring.report import timeseries_plot
from mixai_ml.monitoring.windows import MonitoringSettings, time_series

HOURLY_UP_TO = pd.Timedelta(days=2)
"""Windows up to this long are plotted per hour, longer ones per day."""


def png(figure: Figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def forest_png(results: pd.DataFrame, settings: AbSettings) -> bytes:
    """The A/B report's forest plot of one experiment's ``results`` (rows of
    ``ab_test_results``)."""
    return png(experiment_figure(results, pd.DataFrame(), settings))


def monitoring_png(
    engine: Engine, settings: MonitoringSettings, end: pd.Timestamp, window: str
) -> bytes:
    """Latency, error and fallback rates per task over one monitoring window ending at ``end``."""
    length = settings.windows[window]
    period: Period = "hour" if length <= HOURLY_UP_TO else "day"
    scoped = replace(settings, windows={window: length}, series_period=period)
    return png(timeseries_plot(time_series(engine, scoped, end), period))
