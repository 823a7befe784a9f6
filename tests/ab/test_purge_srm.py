"""The purge and a running experiment: withdrawn users leave the analysis, and the sample-ratio
check still compares the original allocation (no false alarm), even when withdrawals differ by
variant and the service routes a withdrawn user again."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from ab_world import ab_parameters, query, save, simulate_experiment

from mixai_ml.ab.analysis import analyse_experiments, combine_daily_stats
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.srm import srm_p_value
from mixai_ml.datasets import AppQueryDataset, AppTableDataset
from mixai_ml.db import get_engine
from mixai_ml.privacy import purge_withdrawn_users

WITHDRAWAL_RATE = {"control": 0.02, "treatment": 0.12}
"""The worst case for the check: the treatment drives users away (a real effect, not a bug in
the assignment), so withdrawals thin the variants unevenly."""


def counts(url: str, sql: str | None = None) -> dict[str, int]:
    frame = (
        query("ab_assignment_counts", url)
        if sql is None
        else AppQueryDataset(sql=sql, credentials={"con": url}).load()
    )
    return {str(row.variant): int(row.n_assigned) for row in frame.itertuples()}


@pytest.mark.slow
def test_purging_withdrawn_users_raises_no_sample_ratio_alarm(sqlite_url: str) -> None:
    rng = np.random.default_rng(12)
    assignments, metrics = simulate_experiment(rng, "exp-purge", 8_000)
    save(sqlite_url, assignments, metrics)
    rate = assignments["variant"].map(WITHDRAWAL_RATE)
    withdraws = rng.random(len(assignments)) < rate
    consent = pd.DataFrame(
        {
            "user_id": assignments["user_id"],
            "consented": ~withdraws,
            "updated_at": assignments["assigned_at"],
            "withdrawn_at": assignments["assigned_at"].where(withdraws) + pd.Timedelta(days=1),
        }
    )
    AppTableDataset(table_name="ml_consent", credentials={"con": sqlite_url}).save(consent)
    original = counts(sqlite_url)
    weights = {"control": 1.0, "treatment": 1.0}
    engine = get_engine(sqlite_url)

    purge_withdrawn_users(engine, purge_id="p1", abandoned_after=pd.Timedelta(hours=2))

    raw = "SELECT variant, COUNT(*) AS n_assigned FROM ab_test_assignments GROUP BY variant"
    remaining = counts(sqlite_url, raw)
    assert sum(remaining.values()) == len(assignments) - withdraws.sum()
    srm_alpha = AbSettings.from_params(ab_parameters()).srm_alpha
    assert srm_p_value(remaining, weights) < srm_alpha  # the alarm the counts prevent
    assert counts(sqlite_url) == original
    assert srm_p_value(counts(sqlite_url), weights) == srm_p_value(original, weights) > srm_alpha

    # the metrics no longer count the withdrawn users
    daily = query("ab_metric_daily_stats", sqlite_url)
    accepted = daily[daily["metric"] == "accepted"].groupby("variant")["n"].sum().to_dict()
    assert accepted == remaining

    # the service routes withdrawn users again: their new rows go, and are not counted twice
    again = assignments[withdraws].head(300).assign(assigned_at=pd.Timestamp.now(tz="UTC"))
    again.to_sql("ab_test_assignments", engine, if_exists="append", index=False)
    purge_withdrawn_users(engine, purge_id="p2", abandoned_after=pd.Timedelta(hours=2))
    assert counts(sqlite_url) == original

    analysis = analyse_experiments(
        query("ab_assignment_counts", sqlite_url),
        combine_daily_stats(daily, query("ab_covariate_daily_stats", sqlite_url)),
        AbSettings.from_params(ab_parameters()),
        analysed_at=datetime.now(UTC),
    )
    decision = analysis.decisions.iloc[0]
    assert decision["srm_p_value"] > srm_alpha
    assert decision["decision"] != "invalid"
