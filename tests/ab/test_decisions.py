"""Decisions and edge cases of :func:`analyse_experiments`, from hand-made sufficient statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from ab_world import ab_parameters

from mixai_ml.ab.analysis import (
    RESULT_COLUMNS,
    SUM_COLUMNS,
    AbAnalysis,
    analyse_experiments,
    combine_daily_stats,
)
from mixai_ml.ab.config import AbSettings
from mixai_ml.pipelines.ab_analysis.nodes import render_ab_report

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def stats_rows(experiment: str, metric: str, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One day of metric sufficient statistics per variant from per-user values."""
    return [
        {
            "experiment_id": experiment,
            "variant": variant,
            "metric": metric,
            "day": "2026-03-01",
            "n": len(y),
            "sum_y": y.sum(),
            "sum_y2": (y**2).sum(),
            "min_y": y.min(),
            "max_y": y.max(),
        }
        for variant, y in values.items()
    ]


def run(
    rows: list[dict[str, Any]], counts: dict[tuple[str, str], int], **params: Any
) -> AbAnalysis:
    keys = ["experiment_id", "variant", "metric", "day"]
    # empty query results still have their columns
    metric_stats = pd.DataFrame(rows, columns=[*keys, *SUM_COLUMNS[:3], "min_y", "max_y"])
    covariates = pd.DataFrame(columns=[*keys, *SUM_COLUMNS[3:]])
    assignments = pd.DataFrame(
        [(e, v, n) for (e, v), n in counts.items()],
        columns=["experiment_id", "variant", "n_assigned"],
    )
    return analyse_experiments(
        assignments,
        combine_daily_stats(metric_stats, covariates),
        AbSettings.from_params({**ab_parameters(), **params}),
        analysed_at=WHEN,
    )


def accepted(rate_c: float, rate_t: float, n: int) -> dict[str, np.ndarray]:
    """Exact 0/1 samples with the given rates (no sampling noise)."""
    return {
        "control": (np.arange(n) < round(rate_c * n)).astype(float),
        "treatment": (np.arange(n) < round(rate_t * n)).astype(float),
    }


def test_no_control_variant_is_invalid_and_gives_no_rows() -> None:
    rows = stats_rows("exp", "accepted", {"a": np.ones(50), "b": np.zeros(50)})
    analysis = run(rows, {("exp", "a"): 50, ("exp", "b"): 50})

    assert analysis.results.empty
    assert analysis.decisions.loc[0, "decision"] == "invalid"
    assert "control" in analysis.decisions.loc[0, "reasons"]


def test_empty_tables_give_empty_outputs_with_the_columns() -> None:
    analysis = run([], {})

    assert list(analysis.results.columns) == list(RESULT_COLUMNS)
    assert analysis.results.empty
    assert analysis.decisions.empty
    assert analysis.paths.empty
    report, forest, sequential = render_ab_report(
        analysis.results, analysis.decisions, analysis.paths, ab_parameters()
    )
    assert "No experiments" in report
    assert forest.axes
    assert sequential.axes


def test_fixed_horizon_ships_what_the_sequential_basis_still_runs() -> None:
    # 0.30 → 0.32 with 5000 per arm: z ≈ 2.2 (fixed p ≈ 0.03), too weak for the sequence
    rows = stats_rows("exp", "accepted", accepted(0.30, 0.32, 5000))
    counts = {("exp", "control"): 5000, ("exp", "treatment"): 5000}

    fixed = run(rows, counts, decision_basis="fixed")
    sequential = run(rows, counts)

    row = fixed.results.iloc[0]
    assert row["p_value"] < 0.05 < row["seq_p_value"]
    assert fixed.decisions.loc[0, "decision"] == "ship"
    assert sequential.decisions.loc[0, "decision"] == "keep_running"
    assert "not significant" in sequential.decisions.loc[0, "reasons"]


def test_benjamini_hochberg_is_less_strict_than_holm() -> None:
    rows = (
        stats_rows("exp", "accepted", accepted(0.30, 0.33, 4000))
        + stats_rows(
            "exp",
            "m1",
            {
                "control": np.r_[np.zeros(1000), np.ones(3000)] + 1.0,
                "treatment": np.r_[np.zeros(900), np.ones(3100)] + 1.0,
            },
        )
        + stats_rows(
            "exp",
            "m2",
            {"control": np.linspace(0, 1, 4000), "treatment": np.linspace(0, 1, 4000) + 0.02},
        )
    )
    counts = {("exp", "control"): 4000, ("exp", "treatment"): 4000}

    holm = run(rows, counts).results.set_index("metric")
    bh = run(rows, counts, correction="bh").results.set_index("metric")

    assert (bh["p_value_adjusted"] <= holm["p_value_adjusted"] + 1e-15).all()
    assert (holm["p_value_adjusted"] >= holm["p_value"]).all()
    assert set(holm["metric_type"]) == {"proportion", "mean"}  # m1, m2: unknown metrics, means


def test_guardrail_without_margin_stops_when_significantly_worse() -> None:
    rows = stats_rows("exp", "accepted", accepted(0.30, 0.30, 5000)) + stats_rows(
        "exp", "crashes", accepted(0.01, 0.03, 5000)
    )
    counts = {("exp", "control"): 5000, ("exp", "treatment"): 5000}
    params = {
        "metrics": {
            **ab_parameters()["metrics"],
            "crashes": {"type": "proportion", "role": "guardrail", "higher_is_better": False},
        }
    }

    analysis = run(rows, counts, **params)

    crashes = analysis.results.set_index("metric").loc["crashes"]
    assert np.isnan(crashes["noninferiority_margin"])
    assert np.isnan(crashes["p_value_adjusted"])  # guardrails are not in the family
    assert analysis.decisions.loc[0, "decision"] == "stop"
    assert "guardrail crashes" in analysis.decisions.loc[0, "reasons"]
