"""Decisions and edge cases of :func:`analyse_experiments`, from hand-made sufficient statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from ab_world import ab_parameters

from mixai_ml.ab.analysis import RESULT_COLUMNS, AbAnalysis, analyse_experiments
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.store import AbStatistics
from mixai_ml.db.ab_store_tables import AB_HISTOGRAM_SUMS, AB_METRIC_SUMS
from mixai_ml.pipelines.ab_analysis.nodes import render_ab_report

WHEN = datetime(2026, 3, 1, tzinfo=UTC)
KEYS = ["experiment_id", "variant", "metric"]


def stats_rows(experiment: str, metric: str, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Sums of one row per user (no covariate) per variant, from per-user values."""
    return [
        {
            "experiment_id": experiment,
            "variant": variant,
            "metric": metric,
            **dict.fromkeys(AB_METRIC_SUMS, 0.0),
            "n": float(len(y)),
            "n_nonbinary": float((~np.isin(y, [0.0, 1.0])).sum()),
            "sum_y": y.sum(),
            "sum_y2": (y**2).sum(),
            "sum_c": float(len(y)),
            "sum_c2": float(len(y)),
            "sum_s": y.sum(),
            "sum_s2": (y**2).sum(),
            "sum_cs": y.sum(),
        }
        for variant, y in values.items()
    ]


def statistics(rows: list[dict[str, Any]], counts: dict[tuple[str, str], int]) -> AbStatistics:
    totals = pd.DataFrame(rows, columns=[*KEYS, *AB_METRIC_SUMS])
    return AbStatistics(
        assignments=pd.DataFrame(
            [(e, v, "2026-03-01", n) for (e, v), n in counts.items()],
            columns=["experiment_id", "variant", "day", "n_assigned"],
        ),
        metric_totals=totals,
        metric_daily=totals.assign(day="2026-03-01"),
        histograms=pd.DataFrame(columns=[*KEYS, "bin", *AB_HISTOGRAM_SUMS]),
        caps=pd.DataFrame(columns=["experiment_id", "metric", "cap", "pre_users"]),
        designs=pd.DataFrame(columns=["experiment_id", "weights"]),
        folded_before=WHEN,
    )


def run(
    rows: list[dict[str, Any]], counts: dict[tuple[str, str], int], **params: Any
) -> AbAnalysis:
    return analyse_experiments(
        statistics(rows, counts),
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
    report, overview, figures = render_ab_report(
        analysis.results, analysis.decisions, analysis.paths, ab_parameters()
    )
    assert "No experiments" in report
    assert overview.axes
    assert figures == {}


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


def test_expected_split_comes_from_ab_experiments_else_an_even_split() -> None:
    rows = stats_rows("exp", "accepted", accepted(0.3, 0.3, 1000))
    counts = {("exp", "control"): 9000, ("exp", "treatment"): 1000}
    designed = statistics(rows, counts)
    designed = AbStatistics(
        **{
            **designed.__dict__,
            "designs": pd.DataFrame(
                {"experiment_id": ["exp"], "weights": ['{"control": 90, "treatment": 10}']}
            ),
        }
    )
    settings = AbSettings.from_params(ab_parameters())

    from_table = analyse_experiments(designed, settings, WHEN).decisions.iloc[0]
    even = run(rows, counts).decisions.iloc[0]

    assert from_table["weights_from"] == "ab_experiments"
    assert from_table["srm_p_value"] == 1.0
    assert from_table["decision"] != "invalid"
    assert even["weights_from"] == "even split"
    assert even["decision"] == "invalid"

    broken = AbStatistics(
        **{
            **designed.__dict__,
            "designs": pd.DataFrame({"experiment_id": ["exp"], "weights": ["[90, 10]"]}),
        }
    )  # not an object: ignored (with a warning), as if the row were missing
    assert analyse_experiments(broken, settings, WHEN).decisions.iloc[0]["weights_from"] == (
        "even split"
    )


def test_the_decision_reads_the_srm_check_of_its_basis() -> None:
    # 560 vs 440: the chi-square alarms (p ≈ 0.0001), the daily-safe check does not yet
    rows = stats_rows("exp", "accepted", accepted(0.3, 0.3, 440))
    counts = {("exp", "control"): 560, ("exp", "treatment"): 440}

    sequential = run(rows, counts).decisions.iloc[0]
    fixed = run(rows, counts, decision_basis="fixed").decisions.iloc[0]

    assert sequential["srm_p_value"] < 0.001 < sequential["srm_seq_p_value"]
    assert sequential["decision"] != "invalid"
    assert fixed["decision"] == "invalid"
    assert "chi-square SRM" in fixed["reasons"]


def test_corrections_say_what_was_adjusted_with_what() -> None:
    rows = (
        stats_rows("exp", "accepted", accepted(0.30, 0.33, 4000))
        + stats_rows(
            "exp",
            "param_mae",
            {"control": np.linspace(0, 1, 4000), "treatment": np.linspace(0, 1, 4000)},
        )
        + stats_rows("exp", "error", accepted(0.02, 0.02, 4000))
        + stats_rows("solo", "accepted", accepted(0.30, 0.33, 4000))
    )
    counts = {(e, v): 4000 for e in ("exp", "solo") for v in ("control", "treatment")}

    results = run(rows, counts).results.set_index(["experiment_id", "metric"])

    assert results.loc[("exp", "accepted"), "family_size"] == 2
    assert "one of 2 comparisons" in results.loc[("exp", "accepted"), "corrections"]
    assert "Holm's step-down correction" in results.loc[("exp", "accepted"), "corrections"]
    assert "safe to check every day" in results.loc[("exp", "accepted"), "corrections"]
    assert "not corrected for multiple testing" in results.loc[("exp", "error"), "corrections"]
    assert "ratio over all rows" in results.loc[("exp", "error"), "corrections"]
    assert "no multiple-testing correction" in results.loc[("solo", "accepted"), "corrections"]
    bh = run(rows, counts, correction="bh", decision_basis="fixed").results
    assert bh["corrections"].str.contains("Benjamini-Hochberg").any()
    assert bh["corrections"].str.contains("one look at the planned size").all()


def test_a_thousand_experiments_give_a_short_report_with_the_urgent_ones_first() -> None:
    rows, counts = [], {}
    for number in range(1000):
        experiment = f"exp_{number:04d}"
        rate = 0.40 if number % 200 == 0 else 0.30  # five clear wins
        rows += stats_rows(experiment, "accepted", accepted(0.30, rate, 2000))
        lost = 600 if number == 7 else 0  # one broken split
        counts |= {(experiment, "control"): 2000, (experiment, "treatment"): 2000 - lost}
    analysis = run(rows, counts, metrics={"accepted": ab_parameters()["metrics"]["accepted"]})

    report, _, figures = render_ab_report(
        analysis.results,
        analysis.decisions,
        analysis.paths,
        {**ab_parameters(), "report": {"max_detailed": 3}},
    )

    assert list(figures) == ["exp_0007", "exp_0000", "exp_0200"]  # invalid first, then ships
    assert report.count("\n## exp_") == 3
    assert "**5** ship" in report
    assert "**1** invalid" in report
    assert "| exp_0400 | **SHIP** | treatment |" in report  # not in full: one line
    assert "| exp_0999 | accepted" in report  # keeps running: one line
    assert "![exp_0400]" not in report
    assert len(report) < 250_000
