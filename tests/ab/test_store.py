"""The sums kept in the database, on SQLite and PostgreSQL: against pandas truth, incremental
against full, deletions, caps, and the analysis of SQL sums against statsmodels on raw users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from ab_world import START, ab_parameters, refresh, save, simulate_experiment
from sqlalchemy import bindparam, text
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind
from sums import histograms, quantile_sums

from mixai_ml.ab.analysis import analyse_experiments
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.quantile import estimate_quantiles
from mixai_ml.ab.store import SHARE_SPREAD, AbStatistics, forget_users
from mixai_ml.ab.store.processes import split_experiments
from mixai_ml.ab.store.sql import by_index_lookups
from mixai_ml.db import get_engine
from mixai_ml.db.ab_store_tables import AB_METRIC_SUMS

WIDTH = 0.01


def parameters(**changes: Any) -> dict[str, Any]:
    """The project's parameters with every metric type over the simulated world's rows."""
    params = ab_parameters()
    params["metrics"] = {
        **params["metrics"],
        "param_mae": {"type": "mean", "role": "secondary", "cap": {"absolute": 4.0}},
        "param_mae_p90": {"type": "quantile", "source": "param_mae", "quantile": 0.9},
        "param_mae_per_row": {"type": "ratio", "source": "param_mae"},
        "latency_ms": {"type": "mean", "role": "guardrail", "cap": {"pre_period_quantile": 0.9}},
    }
    return {**params, "statistics": {**params["statistics"], **changes}}


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
    """One row per assigned user and metric: rows ``c``, their sum ``s``, ``x`` and the day."""
    is_pre = metrics["metric"].str.endswith("__pre")
    keys = ["experiment_id", "user_id", "metric"]
    y = (
        metrics[~is_pre]
        .groupby(keys)
        .agg(c=("value", "size"), s=("value", "sum"), first=("recorded_at", "min"))
    )
    x = (
        metrics[is_pre]
        .assign(metric=metrics["metric"].str.removesuffix("__pre"))
        .groupby(keys)["value"]
        .mean()
        .rename("x")
    )
    users = y.join(x).reset_index().merge(assignments, on=["experiment_id", "user_id"])
    return users.assign(day=users["first"].dt.strftime("%Y-%m-%d"), y=users["s"] / users["c"])


def expected_totals(users: pd.DataFrame, caps: dict[tuple[str, str], float]) -> pd.DataFrame:
    """The sums of ``ab_metric_daily`` over days, from per-user values, capped like the store."""
    cap = pd.Series(
        [
            caps.get((e, m), np.nan)
            for e, m in zip(users["experiment_id"], users["metric"], strict=True)
        ],
        index=users.index,
    )
    y = users["y"].where(~(users["y"] > cap), cap)
    x = users["x"].where(~(users["x"] > cap), cap)
    hx = x.notna().astype(float)
    x0, c, s = x.fillna(0.0), users["c"].astype(float), users["s"]
    sums = pd.DataFrame(
        {
            "n": 1.0,
            "n_nonbinary": (~y.isin([0.0, 1.0])).astype(float),
            "n_capped": (users["y"] > cap).astype(float),
            "sum_y": y,
            "sum_y2": y**2,
            "sum_c": c,
            "sum_c2": c**2,
            "sum_s": s,
            "sum_s2": s**2,
            "sum_cs": c * s,
            "n_x": hx,
            "sum_x": x0,
            "sum_x2": x0**2,
            "sum_xy": x0 * y,
            "sum_y_x": hx * y,
            "sum_xs": x0 * s,
            "sum_xc": x0 * c,
            "sum_s_x": hx * s,
            "sum_c_x": hx * c,
        }
    )
    keys = ["experiment_id", "variant", "metric"]
    return pd.concat([users[keys], sums], axis=1).groupby(keys)[list(AB_METRIC_SUMS)].sum()


def pre_period_caps(users: pd.DataFrame, metric: str, quantile: float) -> dict:
    rows = users[(users["metric"] == metric) & users["x"].notna()]
    return {
        (e, metric): float(np.quantile(group["x"], quantile, method="inverted_cdf"))
        for e, group in rows.groupby("experiment_id")
    }


def test_stored_sums_match_pandas(db_url: str) -> None:
    assignments, metrics = world(seed=11)
    save(db_url, assignments, metrics)
    users = per_user(assignments, metrics)

    statistics = refresh(db_url, parameters(), START + pd.Timedelta(days=30))

    caps = {**pre_period_caps(users, "latency_ms", 0.9)}
    caps |= {(e, "param_mae"): 4.0 for e in users["experiment_id"].unique()}
    expected = expected_totals(users, caps)
    totals = statistics.metric_totals.set_index(["experiment_id", "variant", "metric"])
    assert sorted(totals.index) == sorted(expected.index)
    pd.testing.assert_frame_equal(
        totals.loc[expected.index, list(AB_METRIC_SUMS)], expected, check_exact=False, rtol=1e-9
    )
    stored_caps = statistics.caps.set_index(["experiment_id", "metric"])["cap"].to_dict()
    assert stored_caps == pytest.approx(pre_period_caps(users, "latency_ms", 0.9))
    # the daily sums add up to the totals, and days are the users' first rows
    primary = statistics.metric_daily.groupby(["experiment_id", "variant", "metric"])["n"].sum()
    assert (primary == totals.loc[primary.index, "n"]).all()
    days = users[users["metric"] == "accepted"].groupby(["experiment_id", "day"]).size()
    assert statistics.metric_daily.groupby(["experiment_id", "day"])["n"].sum().eq(days).all()
    # assignments per variant and day
    assigned = assignments.assign(day=assignments["assigned_at"].dt.strftime("%Y-%m-%d"))
    counts = assigned.groupby(["experiment_id", "variant", "day"]).size()
    stored = statistics.assignments.set_index(["experiment_id", "variant", "day"])["n_assigned"]
    assert stored.sort_index().tolist() == counts.sort_index().tolist()


def test_histograms_are_the_numpy_sums_of_every_row_near_each_quantile(db_url: str) -> None:
    assignments, metrics = world(seed=12)
    save(db_url, assignments, metrics)
    params = parameters()

    statistics = refresh(db_url, params, START + pd.Timedelta(days=30))

    rows = metrics[metrics["metric"] == "param_mae"].merge(
        assignments, on=["experiment_id", "user_id"]
    )
    groups = (
        rows[["experiment_id", "variant"]]
        .drop_duplicates()
        .sort_values(["experiment_id", "variant"])
        .reset_index(drop=True)
    )
    code = rows.merge(groups.reset_index(), on=["experiment_id", "variant"])
    sizes, group, bins, counts, sq, cross = quantile_sums(
        code["index"].to_numpy(), pd.factorize(code["user_id"])[0], code["value"].to_numpy(), WIDTH
    )
    full = histograms(sizes, bins, counts, sq, cross)
    total = full.total_rows[group]
    half = SHARE_SPREAD * np.sqrt(0.9 * 0.1 / total) + 1.0 / total  # param_mae_p90's window
    near = (full.cum_rows >= (0.9 - half) * total) & (
        full.cum_rows - counts <= (0.9 + half) * total
    )
    labels = groups.iloc[group[near]]
    expected = pd.DataFrame(
        {
            "experiment_id": labels["experiment_id"].to_numpy(),
            "variant": labels["variant"].to_numpy(),
            "metric": "param_mae",
            "bin": bins[near],
            "n_rows": counts[near].astype(float),
            "cum_rows": full.cum_rows[near],
            "cum_sq": full.cum_sq[near],
            "cum_cross": full.cum_cross[near],
            "total_rows": total[near],
        }
    )
    pd.testing.assert_frame_equal(statistics.histograms.reset_index(drop=True), expected)
    assert near.mean() < 0.5  # most bins stay in the database

    # the quantiles from these bins are those of the whole histogram
    users = code.groupby("index")["user_id"].nunique().to_numpy()
    per_user = code.groupby(["index", "user_id"]).size()
    squares = (per_user**2).groupby(level=0).sum().to_numpy()
    whole = estimate_quantiles(full, users, squares, np.full(len(groups), 0.9), WIDTH)
    window = AbSettings.from_params(params)
    results = analyse_experiments(statistics, window, datetime(2026, 3, 20, tzinfo=UTC)).results
    rows_p90 = results[results["metric"] == "param_mae_p90"].set_index(["experiment_id", "variant"])
    for position, (experiment, variant) in enumerate(
        zip(groups["experiment_id"], groups["variant"], strict=True)
    ):
        if variant == "control":
            continue
        row = rows_p90.loc[(experiment, variant)]
        assert row["mean_variant"] == pytest.approx(whole.estimate[position], rel=1e-12)


def stored_tables(url: str) -> dict[str, pd.DataFrame]:
    """Every stored sum, in key order."""
    keys = {
        "ab_metric_daily": ["experiment_id", "variant", "metric", "day"],
        "ab_metric_histogram": ["experiment_id", "variant", "metric", "bin"],
        "ab_assignment_daily": ["experiment_id", "variant", "day"],
        "ab_metric_caps": ["experiment_id", "metric"],
    }
    with get_engine(url).connect() as connection:
        return {
            table: pd.read_sql(text(f"SELECT * FROM {table}"), connection)
            .drop(columns=["fixed_at"], errors="ignore")
            .sort_values(columns)
            .reset_index(drop=True)
            for table, columns in keys.items()
        }


def assert_same_statistics(left: AbStatistics, right: AbStatistics) -> None:
    for name in ("assignments", "metric_totals", "metric_daily", "histograms", "caps"):
        pd.testing.assert_frame_equal(
            getattr(left, name), getattr(right, name), check_exact=False, rtol=1e-9, atol=1e-9
        )


def test_folding_day_by_day_equals_a_full_rebuild(db_url: str) -> None:
    assignments, metrics = world(seed=13)
    cut = START + pd.Timedelta(days=5)
    # a fifth of the rows of days 3-4 (open at the first refresh) arrive late
    open_days = metrics["recorded_at"].between(START + pd.Timedelta(days=3), cut)
    held = open_days & (np.random.default_rng(0).random(len(metrics)) < 0.2)
    early = (metrics["recorded_at"] < cut) & ~held
    save(db_url, assignments[assignments["assigned_at"] < cut], metrics[early])
    params = parameters(lookback_days=1)  # yesterday stays open: its late rows are added

    first = refresh(db_url, params, START + pd.Timedelta(days=4))  # folds days 1-2
    assert first.folded_before == START + pd.Timedelta(days=3)
    save(db_url, assignments[assignments["assigned_at"] >= cut], metrics[~early], append=True)
    refresh(db_url, params, START + pd.Timedelta(days=7))
    refresh(db_url, params, START + pd.Timedelta(days=7, hours=5))  # same day: nothing to fold
    incremental = refresh(db_url, params, START + pd.Timedelta(days=9))
    folded = stored_tables(db_url)

    full = refresh(db_url, parameters(lookback_days=1, rebuild=True), START + pd.Timedelta(days=9))

    assert incremental.folded_before == full.folded_before == START + pd.Timedelta(days=8)
    assert_same_statistics(incremental, full)
    for table, frame in stored_tables(db_url).items():
        pd.testing.assert_frame_equal(folded[table], frame, check_exact=False, rtol=1e-9)


def rebuilt_at(url: str) -> Any:
    with get_engine(url).connect() as connection:
        return connection.execute(text("SELECT rebuilt_at FROM ab_statistics_state")).scalar_one()


def test_late_rows_of_a_checked_day_trigger_a_rebuild(db_url: str, caplog: Any) -> None:
    assignments, metrics = world(seed=18)
    late = (metrics["recorded_at"].dt.day == 7) & (np.arange(len(metrics)) % 10 == 0)
    save(db_url, assignments, metrics[~late])
    params = parameters()
    refresh(db_url, params, START + pd.Timedelta(days=8))
    save(db_url, assignments.iloc[:0], metrics[late], append=True)  # stragglers of March 7

    with caplog.at_level("WARNING"):
        noticed = refresh(db_url, params, START + pd.Timedelta(days=8, hours=3))
    full = refresh(db_url, parameters(rebuild=True), START + pd.Timedelta(days=8, hours=3))

    assert "2026-03-07 (+" in caplog.text
    assert_same_statistics(noticed, full)


def test_rows_older_than_the_checked_days_wait_for_a_rebuild(db_url: str) -> None:
    assignments, metrics = world(seed=14)
    late = metrics["user_id"].isin(assignments["user_id"].iloc[:50])
    save(db_url, assignments, metrics[~late])
    params = parameters()
    refresh(db_url, params, START + pd.Timedelta(days=30))
    save(db_url, assignments.iloc[:0], metrics[late], append=True)  # weeks late

    stale = refresh(db_url, params, START + pd.Timedelta(days=30))
    rebuilt = refresh(db_url, parameters(rebuild=True), START + pd.Timedelta(days=30))
    fresh = refresh(db_url, params, START + pd.Timedelta(days=30))

    assert stale.metric_totals["n"].sum() < rebuilt.metric_totals["n"].sum()
    assert_same_statistics(rebuilt, fresh)


def test_forgetting_users_before_deleting_them_equals_a_rebuild(db_url: str) -> None:
    assignments, metrics = world(seed=15)
    save(db_url, assignments, metrics)
    params = parameters()
    now = START + pd.Timedelta(days=8)  # its last 3 days checked for late or deleted rows
    refresh(db_url, params, now)
    gone = assignments["user_id"].iloc[::7].tolist()
    built = rebuilt_at(db_url)

    with get_engine(db_url).begin() as connection:  # as the purge does, in one transaction
        forget_users(connection, gone, AbSettings.from_params(params))
        for table in ("ab_test_metrics", "ab_test_assignments"):
            connection.execute(
                text(f"DELETE FROM {table} WHERE user_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": gone},
            )
    after = stored_tables(db_url)
    refresh(db_url, params, now + pd.Timedelta(hours=1))
    assert rebuilt_at(db_url) == built  # the deletions were accounted for: no rebuild needed
    refresh(db_url, parameters(rebuild=True), now)

    for table, frame in stored_tables(db_url).items():
        pd.testing.assert_frame_equal(after[table], frame, check_exact=False, rtol=1e-9)


def test_a_changed_definition_rebuilds_and_a_cap_stays_fixed(sqlite_url: str) -> None:
    assignments, metrics = world(seed=16)
    save(sqlite_url, assignments, metrics)
    now = START + pd.Timedelta(days=30)
    before = refresh(sqlite_url, parameters(), now)
    # pre-period rows that arrive later do not move a cap already fixed
    extra = metrics[metrics["metric"] == "latency_ms__pre"].assign(value=1e6)
    save(sqlite_url, assignments.iloc[:0], extra, append=True)

    same = refresh(sqlite_url, parameters(), now)
    coarser = refresh(sqlite_url, parameters(histogram_bin_width=0.05), now)

    pd.testing.assert_frame_equal(before.caps, same.caps)
    assert len(coarser.histograms) < len(before.histograms)  # rebuilt with wider bins
    assert coarser.caps["cap"].min() > 1e5  # and the caps fixed again, from every row


def test_a_rebuild_in_worker_processes_equals_one_in_process(sqlite_url: str, caplog: Any) -> None:
    assignments, metrics = world(seed=17)
    save(sqlite_url, assignments, metrics)
    now = START + pd.Timedelta(days=30)
    in_processes = {"processes": 2, "processes_from_users": 0}
    refresh(sqlite_url, parameters(processes=1), now)
    serial = stored_tables(sqlite_url)
    with caplog.at_level("INFO"):
        refresh(sqlite_url, parameters(rebuild=True, **in_processes), now)
    assert "in 2 processes" in caplog.text
    assert "worker 2 of 2 done" in caplog.text  # progress, as each finishes
    for table, frame in stored_tables(sqlite_url).items():
        pd.testing.assert_frame_equal(serial[table], frame, check_exact=False, rtol=1e-9)

    # a changed cap: the workers sum with the caps fixed again in the uncommitted transaction
    recapped = parameters(processes=1)
    recapped["metrics"]["latency_ms"]["cap"] = {"pre_period_quantile": 0.5}
    refresh(sqlite_url, recapped, now)
    serial = stored_tables(sqlite_url)
    recapped["statistics"] |= in_processes
    recapped["metrics"]["latency_ms"]["cap"] = {"pre_period_quantile": 0.9}
    refresh(sqlite_url, recapped, now)  # back and forth: each changes the definition
    recapped["metrics"]["latency_ms"]["cap"] = {"pre_period_quantile": 0.5}
    refresh(sqlite_url, recapped, now)
    for table, frame in stored_tables(sqlite_url).items():
        pd.testing.assert_frame_equal(serial[table], frame, check_exact=False, rtol=1e-9)


@pytest.mark.postgres
def test_the_folds_planner_hints_last_only_for_its_statements(pg_url: str) -> None:
    """The fold's index lookups (no sequential scan, no JIT) are set back afterwards: the
    statements after them in the same transaction are planned as usual."""
    with get_engine(pg_url).begin() as connection:

        def shown() -> list[str]:
            return [
                connection.exec_driver_sql(f"SHOW {name}").scalar_one()
                for name in ("enable_seqscan", "jit")
            ]

        usual = shown()
        with by_index_lookups(connection):
            assert shown() == ["off", "off"]
        assert shown() == usual


def test_experiments_are_split_into_shares_of_about_equal_size() -> None:
    sizes = {"a": 5, "b": 4, "c": 3, "d": 3, "e": 1}
    assert split_experiments(sizes, 2) == [["a", "d"], ["b", "c", "e"]]  # 8 users each
    assert split_experiments(sizes, 9) == [["a"], ["b"], ["c"], ["d"], ["e"]]


def test_analysis_of_sql_statistics_matches_statsmodels_on_raw_users(sqlite_url: str) -> None:
    assignments, metrics = world(seed=17)
    save(sqlite_url, assignments, metrics)
    users = per_user(assignments, metrics)
    params = parameters()
    params["metrics"]["param_mae"] = {"type": "mean", "role": "secondary"}  # uncapped here
    statistics = refresh(sqlite_url, params, START + pd.Timedelta(days=30))

    analysis = analyse_experiments(
        statistics, AbSettings.from_params(params), analysed_at=datetime(2026, 3, 20, tzinfo=UTC)
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

    # param_mae per row: the ratio of sums
    row = results.loc[("exp_three", "param_mae_per_row", "slow")]
    assert row["mean_control"] == pytest.approx(control["s"].sum() / control["c"].sum())
    assert row["mean_variant"] == pytest.approx(variant["s"].sum() / variant["c"].sum())
    assert row["statistic"] == "ratio"

    # accepted: the two-proportion z-test
    control, variant = arms("exp_two", "accepted", "treatment")
    row = results.loc[("exp_two", "accepted", "treatment")]
    _, p = proportions_ztest([variant["y"].sum(), control["y"].sum()], [len(variant), len(control)])
    assert row["metric_type"] == "proportion"
    assert row["p_value"] == pytest.approx(p, abs=1e-6)

    # latency_ms: capped at the pre-period p90, then CUPED = the ANCOVA coefficient
    caps = pre_period_caps(users, "latency_ms", 0.9)
    for experiment, name in (("exp_two", "treatment"), ("exp_three", "fast")):
        control, variant = arms(experiment, "latency_ms", name)
        both = pd.concat([control, variant])
        cap = caps[(experiment, "latency_ms")]
        y, x = both["y"].clip(upper=cap), both["x"].clip(upper=cap)
        x = x.fillna(x.mean())
        design = sm.add_constant(
            np.column_stack([(both["variant"] == name).to_numpy(float), x.to_numpy()])
        )
        row = results.loc[(experiment, "latency_ms", name)]
        assert bool(row["cuped"])
        assert row["cap"] == pytest.approx(cap)
        assert row["capped_share"] == pytest.approx(float((both["y"] > cap).mean()))
        assert row["abs_effect"] == pytest.approx(
            sm.OLS(y.to_numpy(), design).fit().params[1], abs=1e-6
        )

    # param_mae p90 of all rows, within the 1 % bins
    rows = metrics[metrics["metric"] == "param_mae"].merge(assignments)
    for variant_name in ("control", "slow"):
        values = rows[(rows["experiment_id"] == "exp_three") & (rows["variant"] == variant_name)]
        column = "mean_control" if variant_name == "control" else "mean_variant"
        assert results.loc[("exp_three", "param_mae_p90", "slow"), column] == pytest.approx(
            np.quantile(values["value"], 0.9), rel=0.01
        )

    # an unknown 0/1 metric is a proportion; rows of unassigned users are ignored
    assert results.loc[("exp_two", "opened_help", "treatment"), "metric_type"] == "proportion"
    assert results.loc[("exp_two", "opened_help", "treatment"), "role"] == "secondary"
    assert "not-assigned" not in set(users["user_id"])
    assert set(results.loc["exp_three"].index.get_level_values("variant")) == {"fast", "slow"}
