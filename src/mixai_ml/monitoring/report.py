"""The monitoring report: a time-series plot, a Markdown summary and a JSON document."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from mixai_ml.ab.formatting import number as _num
from mixai_ml.monitoring.accuracy import accuracy_metrics
from mixai_ml.monitoring.privacy import PRIVACY_TASK, PrivacySettings, privacy_markdown
from mixai_ml.monitoring.windows import MonitoringSettings

TIMESERIES_PLOT = "monitoring_timeseries.png"
"""File name of the plot, beside the report in ``data/08_reporting``."""
DRIFT_PLOT = "monitoring_drift.png"


def timeseries_plot(series: pd.DataFrame, period: str) -> Figure:
    """Latency (mean and p95), error rate and fallback rate per task over time."""
    figure = Figure(figsize=(9, 8))
    axes = figure.subplots(3, 1, sharex=True)
    if series.empty:
        axes[0].set_title("no predictions logged in the window")
    series = series.assign(period=pd.to_datetime(series["period"], utc=True))  # text from CSV
    for task, rows in series.groupby("task", sort=True):
        line = axes[0].plot(
            rows["period"], rows["latency_mean_ms"], marker=".", label=f"{task} mean"
        )
        axes[0].plot(
            rows["period"],
            rows["latency_p95_ms"],
            ls="--",
            color=line[0].get_color(),
            label=f"{task} p95",
        )
        axes[1].plot(rows["period"], 100 * rows["error_rate"], marker=".", label=str(task))
        axes[2].plot(rows["period"], 100 * rows["fallback_rate"], marker=".", label=str(task))
    for axis, label in zip(
        axes, ("latency (ms)", "error rate (%)", "fallback to rules (%)"), strict=True
    ):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize="small", loc="upper left")
    axes[0].set_title(f"Online predictions per {period} (UTC)", loc="left")
    locator = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.tight_layout()
    return figure


def drift_plot(
    series: pd.DataFrame, drift_series: pd.DataFrame, period: str, feature_psi: float
) -> Figure:
    """Per task: the share of out-of-distribution answers, and the PSI of its most drifted
    inputs (against the drift limit ``feature_psi``), per period."""
    tasks = sorted(set(series["task"]) | set(drift_series["task"]))
    figure = Figure(figsize=(11, 2.8 * max(len(tasks), 1)))
    axes = figure.subplots(max(len(tasks), 1), 2, squeeze=False, sharex=True)
    if not tasks:
        axes[0, 0].set_title("no scored answers in the window")
    series = series.assign(period=pd.to_datetime(series["period"], utc=True))
    drift_series = drift_series.assign(period=pd.to_datetime(drift_series["period"], utc=True))
    for row, task in enumerate(tasks):
        share, psi = axes[row]
        rows = series[series["task"] == task].sort_values("period")
        share.plot(rows["period"], 100 * rows["ood_rate"], marker=".", color="tab:purple")
        share.set(ylabel="out of distribution (%)", title=f"{task}: answers flagged by the guard")
        for feature, lines in drift_series[drift_series["task"] == task].groupby("feature"):
            lines = lines.sort_values("period")
            psi.plot(lines["period"], lines["psi"], marker=".", label=str(feature))
        psi.axhline(feature_psi, color="k", linestyle=":", linewidth=1)
        psi.set(ylabel="PSI vs training", title=f"{task}: most drifted inputs")
        if psi.lines[:-1]:
            psi.legend(fontsize="x-small", loc="upper left")
        for axis in (share, psi):
            axis.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    for axis in axes[-1]:
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.suptitle(
        f"Input drift per {period} (UTC); dotted: PSI {feature_psi:g}", x=0.01, ha="left"
    )
    figure.tight_layout()
    return figure


def _drift_section(summary: pd.DataFrame) -> list[str]:
    """Per window × task × version: scored answers, the out-of-distribution share, and the
    input and prediction drift with the most drifted names."""
    lines = [
        "## Input drift and out-of-distribution answers",
        "",
        f"![Out-of-distribution share and input drift over time]({DRIFT_PLOT})",
        "",
        "| window | task | model version | scored | out of distribution | input PSI max "
        "| drifted inputs | most drifted inputs | prediction PSI max | most drifted outputs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    scored = summary[summary["sketched"] > 0]
    if scored.empty:
        return [*lines[:2], "No scored answers (no training reference, or policy `off`).", ""]
    for r in scored.itertuples():
        share = "–" if pd.isna(r.ood_rate) else f"{100 * r.ood_rate:.1f} %"
        lines.append(
            f"| {r.window} | {r.task} | {r.model_version} | {r.sketched} | {share} "
            f"| {_num(r.input_psi_max)} | {r.input_drifted} | {r.top_drift_features} "
            f"| {_num(r.prediction_psi_max)} | {r.top_drift_outputs or '–'} |"
        )
    return [*lines, ""]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as ISO text, NaN as null."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].map(lambda t: None if pd.isna(t) else t.isoformat())
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in out.astype(object).to_dict("records")
    ]


def summary_document(
    reference: pd.Timestamp | None,
    summary: pd.DataFrame,
    alerts: pd.DataFrame,
    settings: MonitoringSettings,
    privacy: Mapping[str, Any],
) -> dict[str, Any]:
    """The machine-readable summary (``monitoring_summary.json``)."""
    return {
        "reference_time": None if reference is None else reference.isoformat(),
        "windows": {name: str(length) for name, length in settings.windows.items()},
        "latency_resolution_ms": settings.latency_resolution_ms,
        "summary": _records(summary),
        "alerts": _records(alerts),
        "privacy": dict(privacy),
    }


def _alert_lines(alerts: pd.DataFrame) -> list[str]:
    if alerts.empty:
        return ["None: every window is within its thresholds.", ""]
    lines = [
        "| window | task | model version | metric | value | threshold | events |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in alerts.itertuples():
        sign = ">" if a.bound == "max" else "<"
        version = "–" if pd.isna(a.model_version) else a.model_version
        lines.append(
            f"| {a.window} | {a.task} | {version} | {a.metric} | **{_num(a.value)}** "
            f"| {sign} {_num(a.limit)} | {a.observations} |"
        )
    return [*lines, ""]


def markdown_report(
    reference: pd.Timestamp | None,
    summary: pd.DataFrame,
    alerts: pd.DataFrame,
    settings: MonitoringSettings,
    privacy: Mapping[str, Any],
    privacy_settings: PrivacySettings,
) -> str:
    """Alerts first, then the purge's deadlines, traffic and latency per window, then online
    accuracy."""
    windows = ", ".join(settings.windows)
    lines = [
        "# Online monitoring",
        "",
        f"Reference time: {reference.isoformat() if reference is not None else '–'} (UTC); "
        f"windows {windows} ending there. Latency quantiles to ±"
        f"{settings.latency_resolution_ms / 2:g} ms. Methods: `docs/monitoring.md`.",
        "",
        "## Alerts",
        "",
        *_alert_lines(alerts),
        *privacy_markdown(privacy, privacy_settings),
    ]
    if reference is None:
        return "\n".join([*lines, "No predictions in `model_metrics` yet.", ""])
    summary = summary[summary["task"] != PRIVACY_TASK]
    lines += [
        f"![Latency, error and fallback rates over time]({TIMESERIES_PLOT})",
        "",
        "## Traffic and latency",
        "",
        "| window | task | model version | requests | mean ms | p50 ms | p95 ms | p99 ms "
        "| error rate | fallback rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.window} | {r.task} | {r.model_version} | {r.requests} "
            f"| {_num(r.latency_mean_ms)} | {_num(r.latency_p50_ms)} | {_num(r.latency_p95_ms)} "
            f"| {_num(r.latency_p99_ms)} | {100 * r.error_rate:.2f} % "
            f"| {100 * r.fallback_rate:.2f} % |"
        )
    lines += ["", *_drift_section(summary), "## Online accuracy (labelled predictions)", ""]
    for task, names in accuracy_metrics().items():
        rows = summary[(summary["task"] == task) & (summary["labelled"] > 0)]
        lines += [f"### {task}", ""]
        if rows.empty:
            lines += ["No labelled predictions in the windows.", ""]
            continue
        lines += [
            "| window | model version | labelled | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for r in rows.itertuples():
            values = " | ".join(_num(getattr(r, name)) for name in names)
            lines.append(f"| {r.window} | {r.model_version} | {r.labelled} | {values} |")
        lines.append("")
    return "\n".join(lines)
