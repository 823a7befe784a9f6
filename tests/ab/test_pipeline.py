"""The ``ab_analysis`` Kedro pipeline on a test database: outputs, columns and decisions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ab_world import ab_parameters, catalog_config, save, simulate_experiment
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from mixai_ml.ab.analysis import CONTRACT_COLUMNS, EXTRA_COLUMNS, RESULT_COLUMNS
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.report import EXPERIMENT_PLOTS, OVERVIEW_PLOT
from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import schema
from mixai_ml.pipelines.ab_analysis.pipeline import create_pipeline

CONTRACT_SECTION_8 = [
    "experiment_id",
    "metric",
    "variant",
    "control_variant",
    "n_control",
    "n_variant",
    "mean_control",
    "mean_variant",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_value_adjusted",
    "significant",
    "srm_p_value",
    "decision",
]


def run_pipeline(url: str, out: Path, params: dict[str, Any]) -> None:
    """The pipeline with the project's catalog entries, files redirected to ``out``."""
    pipeline = create_pipeline()
    config = {
        name: dict(entry) for name, entry in catalog_config().items() if name in pipeline.datasets()
    }
    for entry in config.values():
        for key in ("filepath", "path"):  # files and the folder of per-experiment plots
            if key in entry:
                entry[key] = str(out / Path(entry[key]).name)
    catalog = DataCatalog.from_config(config, {"mixai_db": {"con": url}})
    catalog["params:ab_analysis"] = params
    SequentialRunner().run(pipeline, catalog)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Four experiments with known truth, analysed once for the module's tests."""
    tmp = tmp_path_factory.mktemp("ab")
    url = f"sqlite:///{tmp / 'ab.db'}"
    rng = np.random.default_rng(21)
    quiet = {"control": 0.001, "treatment": 0.001}  # rare errors: non-inferiority is provable
    parts = [
        simulate_experiment(
            rng,
            "exp_win",
            6000,
            accept_rate={"treatment": 0.40},
            latency_shift={"treatment": -5.0},
            error_rate=quiet,
        ),
        simulate_experiment(rng, "exp_aa", 3000, error_rate=quiet),
        simulate_experiment(
            rng,
            "exp_slow",
            3000,
            accept_rate={"treatment": 0.40},
            latency_shift={"treatment": 30.0},
            error_rate=quiet,
        ),
        simulate_experiment(rng, "exp_srm", 3000, weights={"control": 6, "treatment": 4}),
    ]
    save(url, *(pd.concat(frames, ignore_index=True) for frames in zip(*parts, strict=True)))
    out = tmp / "reporting"
    out.mkdir()
    run_pipeline(url, out, ab_parameters())
    return url, out


@pytest.mark.slow
def test_results_table_and_csv_have_the_contract_columns(outputs: tuple[str, Path]) -> None:
    url, out = outputs
    table = AppTableDataset(table_name="ab_test_results", credentials={"con": url}).load()
    csv = pd.read_csv(out / "ab_test_results.csv")

    assert list(CONTRACT_COLUMNS) == CONTRACT_SECTION_8
    assert list(csv.columns) == [*CONTRACT_SECTION_8, *EXTRA_COLUMNS]
    assert set(table.columns) == set(RESULT_COLUMNS) == set(schema.ab_test_results.columns.keys())
    # 4 experiments × 4 metrics (latency_ms__pre is a covariate, not a metric) × 1 variant
    assert len(table) == len(csv) == 4 * 4
    assert set(csv["metric"]) == {"accepted", "param_mae", "latency_ms", "error"}
    assert (csv["control_variant"] == "control").all()
    types = csv.drop_duplicates("metric").set_index("metric")["statistic"].to_dict()
    assert types == {
        "accepted": "proportion",
        "param_mae": "mean",
        "latency_ms": "p95",
        "error": "ratio",
    }
    assert csv["corrections"].str.len().gt(50).all()


@pytest.mark.slow
def test_decisions_follow_the_known_truth(outputs: tuple[str, Path]) -> None:
    _, out = outputs
    decisions = pd.read_csv(out / "ab_experiment_decisions.csv").set_index("experiment_id")
    results = pd.read_csv(out / "ab_test_results.csv")

    assert decisions.loc["exp_win", "decision"] == "ship"
    assert decisions.loc["exp_win", "ship_variant"] == "treatment"
    assert decisions.loc["exp_aa", "decision"] == "keep_running"
    assert decisions.loc["exp_slow", "decision"] == "stop"
    assert "guardrail latency_ms" in decisions.loc["exp_slow", "reasons"]
    assert decisions.loc["exp_srm", "decision"] == "invalid"
    assert decisions.loc["exp_srm", "srm_p_value"] < 0.001
    for experiment, decision in decisions["decision"].items():
        assert (results.loc[results["experiment_id"] == experiment, "decision"] == decision).all()


@pytest.mark.slow
def test_report_shows_decisions_and_plots(outputs: tuple[str, Path]) -> None:
    _, out = outputs
    report = (out / "ab_report.md").read_text()
    paths = pd.read_csv(out / "ab_sequential_paths.csv")

    for experiment in ("exp_win", "exp_slow", "exp_srm"):  # the ones with a decision to act on
        assert f"## {experiment}" in report
        assert f"]({EXPERIMENT_PLOTS}/{experiment}.png)" in report
        assert (out / EXPERIMENT_PLOTS / f"{experiment}.png").stat().st_size > 10_000
    assert "| exp_aa | accepted " in report  # one line for the one still running
    assert not (out / EXPERIMENT_PLOTS / "exp_aa.png").exists()
    assert f"]({OVERVIEW_PLOT})" in report
    assert (out / OVERVIEW_PLOT).stat().st_size > 10_000
    assert "Holm's step-down correction" in report
    assert "sequential p =" in report  # the anytime-valid SRM check, next to the chi-square
    assert "| latency_ms | guardrail | p95 | treatment " in report  # the tail users feel
    # one cumulative path per experiment (primary metric `accepted`), 10-11 days each
    assert set(paths["experiment_id"]) == {"exp_win", "exp_aa", "exp_slow", "exp_srm"}
    last = paths.groupby("experiment_id")["n_control"].max()
    assert (last > 1000).all()


def test_catalog_writes_the_report_beside_its_plots() -> None:
    config = catalog_config()
    folder = {
        Path(config[name]["filepath"]).parent
        for name in ("ab_report", "ab_overview_plot", "ab_test_results_csv")
    }
    assert folder == {Path("data/08_reporting")}
    assert Path(config["ab_overview_plot"]["filepath"]).name == OVERVIEW_PLOT
    assert (
        Path(config["ab_experiment_plots"]["path"]) == Path("data/08_reporting") / EXPERIMENT_PLOTS
    )


def test_settings_reject_bad_configuration() -> None:
    with pytest.raises(ValueError, match="correction"):
        AbSettings.from_params({**ab_parameters(), "correction": "bonferroni"})
    with pytest.raises(ValueError, match=r"metrics\.latency_ms\.role"):
        AbSettings.from_params({"metrics": {"latency_ms": {"role": "guard"}}})
    with pytest.raises(ValueError, match=r"metrics\.error\.cap: only `mean`"):
        AbSettings.from_params({"metrics": {"error": {"type": "ratio", "cap": {"absolute": 1}}}})
    with pytest.raises(ValueError, match="exactly one of"):
        AbSettings.from_params(
            {"metrics": {"m": {"cap": {"absolute": 1, "pre_period_quantile": 0.9}}}}
        )
    with pytest.raises(ValueError, match="disagree on `cap`"):
        AbSettings.from_params({"metrics": {"m": {"cap": {"absolute": 1}}, "m2": {"source": "m"}}})
    with pytest.raises(ValueError, match="quantile"):
        AbSettings.from_params({"metrics": {"m": {"type": "quantile", "quantile": 95}}})
    with pytest.raises(ValueError, match="processes must be >= 1, got 0"):
        AbSettings.from_params({"statistics": {"processes": 0}})
    # a typo is not ignored (the default would be in force unnoticed); the error names the key
    for where, params, typo, meant in [
        ("statistics", {"statistics": {"rebuilt": True}}, "rebuilt", "rebuild"),
        ("", {"alpah": 0.1}, "alpah", "alpha"),
        (
            "metrics.m",
            {"metrics": {"m": {"higher_is_beter": False}}},
            "higher_is_beter",
            "higher_is_better",
        ),
        ("srm", {"srm": {"alfa": 0.01}}, "alfa", "sequential_concentration"),
        ("experiments.e", {"experiments": {"e": {"tuning_n": 5}}}, "tuning_n", "tuning_n_per"),
    ]:
        place = re.escape(f"ab_analysis.{where}" if where else "ab_analysis")
        with pytest.raises(
            ValueError, match=rf"^{place}: unknown setting\(s\) {typo}; known: .*{meant}"
        ):
            AbSettings.from_params(params)
    with pytest.raises(ValueError, match="lookback_days must be >= 0, got -1"):
        AbSettings.from_params({"statistics": {"lookback_days": -1}})
    settings = AbSettings.from_params(ab_parameters())
    assert settings.metric_spec("latency_ms", False).absolute_margin(200.0) == pytest.approx(20.0)
    assert settings.metric_spec("latency_ms", False).statistic == "p95"
    assert settings.metric_spec("new_metric", True).kind == "proportion"
    with pytest.raises(ValueError, match="weights are defined in the ab_experiments table"):
        AbSettings.from_params({**ab_parameters(), "experiments": {"x": {"weights": {"a": 1}}}})


def test_the_srm_check_uses_the_weights_of_ab_experiments(tmp_path: Path) -> None:
    """An experiment split 6:4 on purpose is no sample-ratio mismatch once its row says so."""
    url = f"sqlite:///{tmp_path / 'ab.db'}"
    rng = np.random.default_rng(3)
    assignments, metrics = simulate_experiment(
        rng, "exp_uneven", 3000, weights={"control": 6, "treatment": 4}
    )
    save(url, assignments, metrics)
    row = {
        "experiment_id": "exp_uneven",
        "task": "master_reg",
        "variants": '{"control": "active", "treatment": "candidate"}',
        "weights": '{"control": 6, "treatment": 4}',
        "coverage": 1.0,
        "status": "stopped",
    }
    AppTableDataset(table_name="ab_experiments", credentials={"con": url}).save(pd.DataFrame([row]))
    run_pipeline(url, tmp_path, ab_parameters())
    results = pd.read_csv(tmp_path / "ab_test_results.csv")
    assert (results["srm_p_value"] > 0.001).all()
