"""The SQL sufficient statistics, end to end on SQLite and PostgreSQL, against pandas truth."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from ab_world import ab_parameters, query, save, simulate_experiment
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from mixai_ml.ab.analysis import SUM_COLUMNS, analyse_experiments, combine_daily_stats
from mixai_ml.ab.config import AbSettings

KEYS = ["experiment_id", "variant", "metric", "day"]


def world(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two experiments (one with three variants), plus rows the analysis must ignore."""
    rng = np.random.default_rng(seed)
    a1, m1 = simulate_experiment(
        rng, "exp_two", 600, accept_rate={"treatment": 0.4}, latency_shift={"treatment": -8.0}
    )
    a2, m2 = simulate_experiment(
        rng,
        "exp_three",
        450,
        weights={"control": 2, "fast": 1, "slow": 1},
        latency_shift={"fast": -5.0, "slow": 5.0},
    )
    stray = m1.iloc[:5].assign(user_id="not-assigned")  # metric rows without an assignment
    flag = a1[["experiment_id", "user_id"]].assign(  # an unknown 0/1 metric
        metric="opened_help",
        value=(rng.random(len(a1)) < 0.2).astype(float),
        recorded_at=a1["assigned_at"],
    )
    return pd.concat([a1, a2], ignore_index=True), pd.concat(
        [m1, m2, stray, flag], ignore_index=True
    )


def per_user(assignments: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per assigned user and metric: y, x (the ``__pre`` mean or NaN) and the day."""
    is_pre = metrics["metric"].str.endswith("__pre")
    keys = ["experiment_id", "user_id", "metric"]
    y = metrics[~is_pre].groupby(keys).agg(y=("value", "mean"), first=("recorded_at", "min"))
    x = (
        metrics[is_pre]
        .assign(metric=metrics["metric"].str.removesuffix("__pre"))
        .groupby(keys)["value"]
        .mean()
        .rename("x")
    )
    users = y.join(x).reset_index().merge(assignments, on=["experiment_id", "user_id"])
    return users.assign(day=users["first"].dt.strftime("%Y-%m-%d"))


def test_sql_sufficient_statistics_match_pandas(db_url: str) -> None:
    assignments, metrics = world(seed=11)
    save(db_url, assignments, metrics)
    truth = per_user(assignments, metrics)
    has_x = truth["x"].notna()
    expected = (
        truth.assign(
            n=1.0,
            sum_y=truth["y"],
            sum_y2=truth["y"] ** 2,
            n_x=has_x.astype(float),
            sum_x=truth["x"].fillna(0.0),
            sum_x2=truth["x"].fillna(0.0) ** 2,
            sum_xy=(truth["x"] * truth["y"]).fillna(0.0),
            sum_y_x=truth["y"].where(has_x, 0.0),
        )
        .groupby(KEYS)[list(SUM_COLUMNS)]
        .sum()
    )

    daily = combine_daily_stats(
        query("ab_metric_daily_stats", db_url), query("ab_covariate_daily_stats", db_url)
    ).set_index(KEYS)[list(SUM_COLUMNS)]
    counts = query("ab_assignment_counts", db_url).set_index(["experiment_id", "variant"])

    assert sorted(daily.index) == sorted(expected.index)
    pd.testing.assert_frame_equal(
        daily.loc[expected.index].astype(float), expected, check_exact=False, rtol=1e-9
    )
    expected_counts = assignments.groupby(["experiment_id", "variant"]).size()
    assert counts["n_assigned"].sort_index().tolist() == expected_counts.sort_index().tolist()


def test_analysis_of_sql_statistics_matches_statsmodels_on_raw_users(sqlite_url: str) -> None:
    assignments, metrics = world(seed=12)
    save(sqlite_url, assignments, metrics)
    users = per_user(assignments, metrics)
    settings = AbSettings.from_params(ab_parameters())

    analysis = analyse_experiments(
        query("ab_assignment_counts", sqlite_url),
        combine_daily_stats(
            query("ab_metric_daily_stats", sqlite_url),
            query("ab_covariate_daily_stats", sqlite_url),
        ),
        settings,
        analysed_at=datetime(2026, 3, 20, tzinfo=UTC),
    )
    results = analysis.results.set_index(["experiment_id", "metric", "variant"])

    def arms(experiment: str, metric: str, variant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows = users[(users["experiment_id"] == experiment) & (users["metric"] == metric)]
        return rows[rows["variant"] == "control"], rows[rows["variant"] == variant]

    # param_mae: several rows per user, Welch on the per-user means
    control, variant = arms("exp_three", "param_mae", "slow")
    row = results.loc[("exp_three", "param_mae", "slow")]
    _, p, _ = ttest_ind(variant["y"], control["y"], usevar="unequal")
    low, high = CompareMeans(DescrStatsW(variant["y"]), DescrStatsW(control["y"])).tconfint_diff(
        usevar="unequal"
    )
    assert (row["n_control"], row["n_variant"]) == (len(control), len(variant))
    assert row["p_value"] == pytest.approx(p, abs=1e-6)
    assert (row["abs_ci_low"], row["abs_ci_high"]) == pytest.approx((low, high), abs=1e-6)

    # accepted: the two-proportion z-test
    control, variant = arms("exp_two", "accepted", "treatment")
    row = results.loc[("exp_two", "accepted", "treatment")]
    _, p = proportions_ztest([variant["y"].sum(), control["y"].sum()], [len(variant), len(control)])
    assert row["metric_type"] == "proportion"
    assert row["p_value"] == pytest.approx(p, abs=1e-6)

    # latency_ms: CUPED = the ANCOVA coefficient (missing x imputed by the pooled mean)
    for experiment, name in (("exp_two", "treatment"), ("exp_three", "fast")):
        control, variant = arms(experiment, "latency_ms", name)
        both = pd.concat([control, variant])
        x = both["x"].fillna(both["x"].mean())
        design = sm.add_constant(
            np.column_stack([(both["variant"] == name).to_numpy(float), x.to_numpy()])
        )
        row = results.loc[(experiment, "latency_ms", name)]
        assert bool(row["cuped"])
        assert row["abs_effect"] == pytest.approx(
            sm.OLS(both["y"].to_numpy(), design).fit().params[1], abs=1e-6
        )
        assert row["variance_reduction"] > 0.5

    # an unknown 0/1 metric is a proportion; rows of unassigned users are ignored
    assert results.loc[("exp_two", "opened_help", "treatment"), "metric_type"] == "proportion"
    assert results.loc[("exp_two", "opened_help", "treatment"), "role"] == "secondary"
    assert "not-assigned" not in set(users["user_id"])
    assert set(results.loc["exp_three"].index.get_level_values("variant")) == {"fast", "slow"}
