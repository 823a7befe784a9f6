"""Input and prediction drift from the answers' sketches: the PSI, the windows, the alerts and
the report, on logs whose drift episode is known (the demo world's guard columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from prediction_logs import (
    CURRENT_VERSION,
    PROJECT,
    REFERENCE,
    monitoring_parameters,
    save_logs,
    simulate_logs,
)

from mixai_inference.ood import SKETCH_BINS
from mixai_inference.tasks import task_names, task_specs
from mixai_ml.db import get_engine
from mixai_ml.monitoring.accuracy import ALL_METRICS, accuracy_metrics
from mixai_ml.monitoring.alerts import threshold_alerts
from mixai_ml.monitoring.drift import digit_counts, drift_windows, psi, top_drifting
from mixai_ml.monitoring.windows import RULE_METRICS, MonitoringSettings, window_summary
from mixai_ml.pipelines.monitoring.nodes import render_monitoring_report, summarise_windows
from mixai_ml.simulation.guard import guard_columns

GUARD = yaml.safe_load((PROJECT / "conf/base/parameters_demo_data.yml").read_text())["demo_data"][
    "online"
]["guard"]
DRIFTED_PREFIXES = tuple(GUARD["drift"]["inputs"])
# the tasks reading a low-passed feature drift; the others see the same uploads unchanged
DRIFTED_TASKS = tuple(
    spec.name
    for spec in task_specs()
    if any(name.startswith(DRIFTED_PREFIXES) for name in spec.input_names())
)
STEADY_TASKS = tuple(name for name in task_names() if name not in DRIFTED_TASKS)


def population_stability(expected: np.ndarray, actual: np.ndarray) -> float:
    """The textbook PSI of two distributions over the same bins (no empty bin)."""
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def test_psi_matches_the_textbook_formula_and_is_near_zero_without_drift() -> None:
    rng = np.random.default_rng(5)
    counts = rng.integers(500, 5000, (4, SKETCH_BINS))
    for row, value in zip(counts, psi(counts), strict=True):
        share = (row + 0.5) / (row.sum() + 0.5 * SKETCH_BINS)
        assert value == pytest.approx(population_stability(np.full(SKETCH_BINS, 0.1), share))
    uniform = rng.integers(0, SKETCH_BINS, (20_000, 3)).astype(np.uint8)
    assert psi(digit_counts(uniform)).max() < 0.003  # about 9 / n
    low = uniform.copy()
    low[:, 1] = rng.integers(0, 2, len(low))  # the two lowest deciles only
    values = psi(digit_counts(low))
    assert values[1] > 1.0
    assert top_drifting(values, ["a", "b", "c"], 1) == [("b", pytest.approx(values[1]))]
    assert np.isnan(psi(np.zeros((1, SKETCH_BINS))))[0]


@pytest.fixture(scope="module")
def drifting_logs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """35 days of logs, enough for the 1-day window to count, with the demo's drift episode:
    from 4 days before the end 60 % of the uploads are low-passed."""
    metrics, labels = simulate_logs(np.random.default_rng(3), n=30_000)
    return guard_columns(metrics, GUARD, seed=3, world_end=REFERENCE), labels


@pytest.mark.slow
def test_the_drift_episode_is_found_named_and_alerted(
    sqlite_url: str, drifting_logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = drifting_logs
    save_logs(sqlite_url, metrics, labels)
    engine = get_engine(sqlite_url)
    settings = MonitoringSettings.from_params(monitoring_parameters())
    drift, series = drift_windows(engine, settings, REFERENCE)
    summary = window_summary(engine, settings, REFERENCE, drift).set_index(
        ["window", "task", "model_version"]
    )

    assert DRIFTED_TASKS
    assert STEADY_TASKS
    recent = metrics[metrics["recorded_at"] > REFERENCE - pd.Timedelta("1D")]
    for task in DRIFTED_TASKS:
        # the share of out-of-distribution answers is the log's
        served = recent[
            (recent["task"] == task) & (recent["model_version"] == CURRENT_VERSION[task])
        ]
        ood_rate = summary.loc[("1d", task, CURRENT_VERSION[task]), "ood_rate"]
        assert ood_rate == pytest.approx(served["ood"].sum() / served["ood_score"].notna().sum())
        assert ood_rate > 0.4
        for window in ("1d", "7d"):
            row = summary.loc[(window, task, CURRENT_VERSION[task])]
            assert row["input_psi_max"] > 0.25
            named = row["top_drift_features"].split(", ")
            assert all(item.startswith(DRIFTED_PREFIXES) for item in named)
            assert row["prediction_psi_max"] > 0.25
        # diluted over 30 days (4 days of 60 %): no input drift alert
        assert summary.loc[("30d", task, CURRENT_VERSION[task]), "input_psi_max"] < 0.25
    for task in STEADY_TASKS:
        for window in ("1d", "7d", "30d"):
            row = summary.loc[(window, task, CURRENT_VERSION[task])]
            assert row["input_psi_max"] < 0.1
            assert row["ood_rate"] < 0.05

    alerts = threshold_alerts(summary.reset_index(), settings)
    fired = set(zip(alerts["window"], alerts["task"], alerts["metric"], strict=True))
    for task in DRIFTED_TASKS:
        assert {("1d", task, "input_psi_max"), ("1d", task, "ood_rate")} <= fired
        assert ("7d", task, "prediction_psi_max") in fired
        # the plot's series follow the most drifted inputs per day: low before, high at the end
        drifted = series[series["task"] == task]
        assert drifted["feature"].str.startswith(DRIFTED_PREFIXES).all()
        days = pd.to_datetime(drifted["period"], utc=True)
        assert drifted.loc[days < REFERENCE - pd.Timedelta("6D"), "psi"].max() < 0.25
        assert drifted.loc[days > REFERENCE - pd.Timedelta("2D"), "psi"].min() > 0.25
    assert not {alert for alert in fired if alert[1] in STEADY_TASKS and "psi" in alert[2]}


@pytest.mark.slow
def test_the_report_names_the_drift_and_draws_it(
    sqlite_url: str, drifting_logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    metrics, labels = drifting_logs
    save_logs(sqlite_url, metrics, labels)
    params = monitoring_parameters()
    summary, alerts, series, drift, privacy = summarise_windows(get_engine(sqlite_url), params)
    report, _, drift_figure, document = render_monitoring_report(
        summary, alerts, series, drift, privacy, params
    )
    assert "## Input drift and out-of-distribution answers" in report
    assert "](monitoring_drift.png)" in report
    assert "input_psi_max" in report
    assert any(alert["metric"] == "ood_rate" for alert in document["alerts"])
    psi_axes = [axis for axis in drift_figure.axes if "most drifted inputs" in axis.get_title()]
    assert len(psi_axes) == 3
    assert all(axis.lines for axis in psi_axes)


def test_the_demo_world_drift_is_deterministic_by_seed(
    drifting_logs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    metrics, _ = drifting_logs
    again = guard_columns(
        metrics.drop(columns=["ood_score", "ood", "input_sketch"]), GUARD, 3, REFERENCE
    )
    pd.testing.assert_frame_equal(again, metrics)
    unanswered = metrics["prediction"].isna()
    assert metrics.loc[unanswered, "input_sketch"].isna().all()
    assert metrics.loc[~unanswered, "ood_score"].notna().all()
    before = metrics[(metrics["recorded_at"] < REFERENCE - pd.Timedelta("5D")) & ~unanswered]
    assert before["ood"].mean() == pytest.approx(0.01, abs=0.006)  # the calibrated 1 %


@pytest.mark.slow
def test_the_rules_a_task_accepts_are_those_that_can_fire(
    sqlite_url: str, drifting_logs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """A rule on every metric the settings accept for a task, each crossed by any finite
    value, fires for that task: no accepted rule is one that could never fire."""
    save_logs(sqlite_url, *drifting_logs)
    params = monitoring_parameters()
    thresholds = {"min_requests": 1, "min_labelled": 1, "min_sketched": 1}
    accepted = {
        task: [m for m in RULE_METRICS if m not in ALL_METRICS or m in accuracy_metrics()[task]]
        for task in task_names()
    }
    rules = {task: {m: {"min": 1e12} for m in metrics} for task, metrics in accepted.items()}
    settings = MonitoringSettings.from_params(
        {**params, "thresholds": {**thresholds, "rules": rules}}
    )
    summary = window_summary(get_engine(sqlite_url), settings, REFERENCE)

    alerts = threshold_alerts(summary, settings)

    fired = alerts.groupby("task")["metric"].agg(set).to_dict()
    assert fired == {task: set(metrics) for task, metrics in accepted.items()}
