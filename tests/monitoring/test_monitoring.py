"""Monitoring windows, online accuracy, alerts and the pipeline, against pandas/sklearn truth."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from prediction_logs import (
    BURST_TASKS,
    CURRENT_VERSION,
    PROJECT,
    REFERENCE,
    monitoring_parameters,
    save_logs,
    simulate_logs,
)
from sklearn import metrics as skm

from mixai_inference.tasks import MASTER_PARAM_RANGES, task_specs
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import get_engine
from mixai_ml.monitoring.accuracy import online_accuracy
from mixai_ml.monitoring.alerts import threshold_alerts
from mixai_ml.monitoring.privacy import AGE_METRIC, PRIVACY_TASK, PRIVACY_WINDOW
from mixai_ml.monitoring.queries import NO_VERSION
from mixai_ml.monitoring.report import TIMESERIES_PLOT
from mixai_ml.monitoring.windows import (
    MonitoringSettings,
    histogram_quantiles,
    reference_time,
    time_series,
    window_summary,
)
from mixai_ml.pipelines.monitoring.pipeline import create_pipeline
from project_copy import changed_parameters

WINDOWS = {
    "1h": pd.Timedelta("1h"),
    "1d": pd.Timedelta("1D"),
    "7d": pd.Timedelta("7D"),
    "30d": pd.Timedelta("30D"),
}


@pytest.fixture(scope="module")
def logs() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_logs(np.random.default_rng(31))


def in_window(metrics: pd.DataFrame, length: pd.Timedelta) -> pd.DataFrame:
    return metrics[
        (metrics["recorded_at"] > REFERENCE - length) & (metrics["recorded_at"] <= REFERENCE)
    ]


def test_histogram_quantiles_are_within_half_a_bucket_of_numpy() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(3.5, 0.8, 5000)
    width = 2.0
    buckets = pd.Series(np.floor(values / width).astype(int)).value_counts()
    histogram = pd.DataFrame({"g": "a", "bucket": buckets.index, "count": buckets.to_numpy()})
    quantiles = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

    result = histogram_quantiles(histogram, ["g"], quantiles, width).iloc[0]

    for name, q in quantiles.items():
        exact = np.quantile(values, q, method="inverted_cdf")
        assert abs(result[name] - exact) <= width / 2


def test_window_summary_matches_pandas(
    db_url: str, logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = logs
    save_logs(db_url, metrics, labels)
    settings = MonitoringSettings.from_params(monitoring_parameters())
    engine = get_engine(db_url)

    end = reference_time(engine, settings)
    summary = (
        window_summary(engine, settings, end)
        .set_index(["window", "task", "model_version"])
        .sort_index()
    )

    assert end == REFERENCE
    assert set(summary.index.get_level_values("window")) == set(WINDOWS)
    for name, length in WINDOWS.items():
        rows = in_window(metrics, length).assign(
            model_version=lambda f: f["model_version"].fillna(NO_VERSION)
        )
        for (task, version), group in rows.groupby(["task", "model_version"]):
            row = summary.loc[(name, task, version)]
            assert row["requests"] == len(group)
            assert row["latency_mean_ms"] == pytest.approx(group["latency_ms"].mean(), rel=1e-9)
            assert row["error_rate"] == pytest.approx(1 - group["ok"].mean(), abs=1e-12)
            assert row["fallback_rate"] == pytest.approx((group["source"] == "rules").mean())
            for column, q in (
                ("latency_p50_ms", 0.5),
                ("latency_p95_ms", 0.95),
                ("latency_p99_ms", 0.99),
            ):
                exact = np.quantile(group["latency_ms"], q, method="inverted_cdf")
                assert abs(row[column] - exact) <= settings.latency_resolution_ms / 2
        assert summary.loc[name, "requests"].sum() == len(rows)

    series = time_series(engine, settings, end)
    assert series["requests"].sum() == len(in_window(metrics, WINDOWS["30d"]))
    assert series["period"].dt.tz is not None


def test_online_accuracy_matches_sklearn(
    sqlite_url: str, logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = logs
    save_logs(sqlite_url, metrics, labels)
    settings = MonitoringSettings.from_params(monitoring_parameters())
    summary = window_summary(get_engine(sqlite_url), settings, REFERENCE).set_index(
        ["window", "task", "model_version"]
    )
    pairs = in_window(metrics, WINDOWS["7d"]).merge(labels, on=["job_id", "task"])
    pairs = pairs[pairs["model_version"].notna()]
    predicted = pairs["prediction"].map(json.loads)
    truth = pairs["label"].map(json.loads)

    for spec in task_specs():
        rows = (pairs["task"] == spec.name) & (pairs["model_version"] == CURRENT_VERSION[spec.name])
        row = summary.loc[("7d", spec.name, CURRENT_VERSION[spec.name])]
        assert row["labelled"] == rows.sum() > 0
        if spec.kind == "regression":
            p = np.array([[d[k] for k in spec.outputs] for d in predicted[rows]])
            t = np.array([[d[k] for k in spec.outputs] for d in truth[rows]])
            spans = np.array([hi - lo for lo, hi in spec.ranges.values()])
            assert row["mae"] == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-9)
            rmse = np.mean(np.sqrt(((p - t) ** 2).mean(axis=0)))
            assert row["rmse"] == pytest.approx(rmse, rel=1e-9)
            assert row["r2"] == pytest.approx(skm.r2_score(t, p), rel=1e-9)
            mae_norm = np.mean(np.abs(p - t).mean(axis=0) / spans)
            assert row["mae_norm"] == pytest.approx(mae_norm, rel=1e-9)
        elif spec.kind == "classification":
            expected_f1 = skm.f1_score(
                [d[spec.label_key] for d in truth[rows]],
                [d[spec.label_key] for d in predicted[rows]],
                labels=list(spec.outputs),
                average="macro",
                zero_division=0,
            )
            assert row["macro_f1"] == pytest.approx(expected_f1, rel=1e-9)
        else:
            outcome = [float(d[spec.label_key]) for d in truth[rows]]
            probability = [d["confidence"] for d in predicted[rows]]
            assert row["roc_auc"] == pytest.approx(
                skm.roc_auc_score(outcome, probability), rel=1e-9
            )
            assert row["brier"] == pytest.approx(
                skm.brier_score_loss(outcome, probability), rel=1e-9
            )


def test_online_accuracy_known_answers() -> None:
    label = {k: (low + high) / 2 for k, (low, high) in MASTER_PARAM_RANGES.items()}
    n, perfect = online_accuracy("master_reg", [json.dumps(label)] * 3, [json.dumps(label)] * 3)
    assert n == 3
    assert perfect["mae"] == perfect["mae_norm"] == 0.0
    n, result = online_accuracy(
        "preset_cls",
        ['{"preset": "natural"}', '{"preset": "loud_edm"}', "not json"],
        ['{"preset": "natural"}', '{"preset": "natural"}', '{"preset": "natural"}'],
    )
    assert n == 2  # the broken row is skipped
    assert result["macro_f1"] == pytest.approx(
        skm.f1_score([0, 0], [0, 4], labels=range(6), average="macro", zero_division=0)
    )
    n, single_class = online_accuracy(
        "align_conf", ['{"confidence": 0.9}'] * 2, ['{"aligned_ok": true}'] * 2
    )
    assert np.isnan(single_class["roc_auc"])
    assert single_class["brier"] == pytest.approx(0.01)


def test_alerts_flag_the_error_burst_only_where_there_is_enough_traffic(
    sqlite_url: str, logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = logs
    save_logs(sqlite_url, metrics, labels)
    params = monitoring_parameters()
    settings = MonitoringSettings.from_params(params)
    summary = window_summary(get_engine(sqlite_url), settings, REFERENCE)

    alerts = threshold_alerts(summary, settings)
    errors = alerts[alerts["metric"] == "error_rate"]
    strict = MonitoringSettings.from_params(
        {**params, "thresholds": {**params["thresholds"], "min_requests": 10**6}}
    )

    # the burst's tasks failed half their requests in the last hour: flagged in 1h (if ≥ 20)
    last_hour = in_window(metrics, WINDOWS["1h"]).groupby("task").size()
    flagged = set(zip(errors["window"], errors["task"], strict=True))
    for task in BURST_TASKS:
        assert (("1h", task) in flagged) == (last_hour.get(task, 0) >= 20)
        assert ("30d", task) not in flagged  # diluted over 30 days: 1 % + a short burst
    assert threshold_alerts(summary, strict).query("metric == 'error_rate'").empty
    assert set(alerts.columns) >= {"window", "task", "model_version", "metric", "value", "limit"}


def test_monitoring_pipeline_writes_report_plot_and_summaries(
    tmp_path: Path, logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = logs
    url = f"sqlite:///{tmp_path / 'm.db'}"
    save_logs(url, metrics, labels)
    pipeline = create_pipeline()
    config: dict = {}
    for name in ("catalog.yml", "catalog_monitoring.yml"):
        config.update(yaml.safe_load((PROJECT / "conf" / "base" / name).read_text()))
    config = {k: dict(v) for k, v in config.items() if k in pipeline.datasets()}
    for entry in config.values():
        if "filepath" in entry:
            entry["filepath"] = str(tmp_path / Path(entry["filepath"]).name)
    catalog = DataCatalog.from_config(config, {"mixai_db": {"con": url}})
    catalog["params:monitoring"] = monitoring_parameters()

    SequentialRunner().run(pipeline, catalog)

    document = json.loads((tmp_path / "monitoring_summary.json").read_text())
    summary = pd.read_csv(tmp_path / "monitoring_summary.csv")
    report = (tmp_path / "monitoring_report.md").read_text()
    assert pd.Timestamp(document["reference_time"]) == REFERENCE
    assert len(document["summary"]) == len(summary) > 0
    assert set(summary["window"]) == {*WINDOWS, PRIVACY_WINDOW}
    privacy = summary[summary["task"] == PRIVACY_TASK].iloc[0]
    assert privacy["pending_withdrawals"] == 0
    assert document["privacy"]["level"] == "ok"
    assert "## Privacy: the 24-hour purge" in report
    assert f"]({TIMESERIES_PLOT})" in report
    assert "## Alerts" in report
    assert (tmp_path / TIMESERIES_PLOT).stat().st_size > 10_000
    assert Path(config["monitoring_plot"]["filepath"]).name == TIMESERIES_PLOT
    assert pd.read_csv(tmp_path / "monitoring_alerts.csv").shape[0] == len(document["alerts"])


def test_reference_time_parameter_moves_the_windows(
    sqlite_url: str, logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = logs
    save_logs(sqlite_url, metrics, labels)
    earlier = REFERENCE - pd.Timedelta("3D")
    settings = MonitoringSettings.from_params(
        {**monitoring_parameters(), "reference_time": "2026-04-27T12:00:00Z"}
    )
    engine = get_engine(sqlite_url)

    summary = window_summary(engine, settings, reference_time(engine, settings))

    expected = (
        (metrics["recorded_at"] > earlier - pd.Timedelta("1D"))
        & (metrics["recorded_at"] <= earlier)
    ).sum()
    assert summary.loc[summary["window"] == "1d", "requests"].sum() == expected


def test_empty_log_gives_an_empty_report(sqlite_url: str) -> None:
    from mixai_ml.pipelines.monitoring.nodes import render_monitoring_report, summarise_windows

    params = monitoring_parameters()
    summary, alerts, series, drift, privacy = summarise_windows(get_engine(sqlite_url), params)
    report, _, _, document = render_monitoring_report(
        summary, alerts, series, drift, privacy, params
    )

    assert summary["task"].tolist() == [PRIVACY_TASK]  # the purge's figure is always there
    assert alerts.empty
    assert series.empty
    assert drift.empty
    assert "No predictions" in report
    assert "no withdrawal waits for the purge" in report
    assert document["reference_time"] is None


@pytest.mark.parametrize(
    ("age_h", "limit", "level"),
    [
        (11.0, None, "OK"),
        (13.0, 12.0, "WARNING"),
        (21.0, 20.0, "CRITICAL"),
        (30.0, 24.0, "DEADLINE MISSED"),
    ],
)
def test_the_oldest_pending_withdrawal_alerts_before_its_deadline(
    sqlite_url: str, age_h: float, limit: float | None, level: str
) -> None:
    from mixai_ml.pipelines.monitoring.nodes import render_monitoring_report, summarise_windows

    withdrawn = REFERENCE - pd.Timedelta(hours=age_h)
    consent = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "consented": [False, True],
            "updated_at": withdrawn,
            "withdrawn_at": [withdrawn, pd.NaT],
        }
    )
    AppTableDataset(table_name="ml_consent", credentials={"con": sqlite_url}).save(consent)
    params = {**monitoring_parameters(), "reference_time": REFERENCE.isoformat()}

    summary, alerts, series, drift, privacy = summarise_windows(get_engine(sqlite_url), params)
    report, _, _, document = render_monitoring_report(
        summary, alerts, series, drift, privacy, params
    )

    row = summary[summary["task"] == PRIVACY_TASK].iloc[0]
    assert row["pending_withdrawals"] == 1
    assert row[AGE_METRIC] == pytest.approx(age_h)
    assert row["overdue_withdrawals"] == int(age_h > 24)
    if limit is None:
        assert alerts.empty
    else:
        assert alerts[["task", "metric", "limit"]].values.tolist() == [
            [PRIVACY_TASK, AGE_METRIC, limit]
        ]
    assert f"**{level}" in report
    assert document["privacy"]["pending"] == 1


def _typo(path: str, key: str, value: Any = None, *, drop: bool = False) -> dict[str, Any]:
    return changed_parameters(f"monitoring{path and '.'}{path}", key, value, drop=drop)[
        "monitoring"
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (_typo("", "window", {"1h": "1h"}), "monitoring: unknown setting(s) window; known: "),
        (_typo("drift", "top_feature", 3), "monitoring.drift: unknown setting(s) top_feature"),
        (
            _typo("thresholds", "min_labelled", drop=True),
            "monitoring.thresholds: missing setting(s) min_labelled",
        ),
        (
            _typo("thresholds.rules.all_tasks", "error_rat", {"max": 0.02}),
            "monitoring.thresholds.rules.all_tasks: unknown metric(s) error_rat; known: ",
        ),
        (
            _typo("thresholds.rules", "master_rg", {"mae": {"max": 1}}),
            "monitoring.thresholds.rules: unknown task(s) master_rg; known: align_conf, "
            "all_tasks, master_reg, preset_cls",
        ),
        # a regression task reports no macro F1: the rule would never fire
        (
            _typo("thresholds.rules.master_reg", "macro_f1", {"min": 0.4}),
            "monitoring.thresholds.rules.master_reg: unknown metric(s) macro_f1",
        ),
        (
            _typo("thresholds.rules.master_reg", "mae", {"above": 1}),
            "monitoring.thresholds.rules.master_reg.mae: unknown bound(s) above; known: max, min",
        ),
        (
            _typo("thresholds.rules.master_reg", "mae", {}),
            "monitoring.thresholds.rules.master_reg.mae: set max or min",
        ),
        (_typo("", "windows", {}), "monitoring.windows must be positive durations"),
    ],
)
def test_settings_name_the_bad_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MonitoringSettings.from_params(params)
