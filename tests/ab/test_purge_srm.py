"""The purge and a running experiment: withdrawn users leave the analysis, and the sample-ratio
check still compares the original allocation (no false alarm), even when withdrawals differ by
variant and the service routes a withdrawn user again."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from ab_world import START, ab_parameters, refresh, save, simulate_experiment

from mixai_ml.ab.analysis import analyse_experiments
from mixai_ml.ab.config import AbSettings
from mixai_ml.ab.srm import srm_p_value
from mixai_ml.ab.store import AbStatistics
from mixai_ml.datasets import AppQueryDataset, AppTableDataset
from mixai_ml.db import get_engine
from mixai_ml.privacy import purge_withdrawn_users

WITHDRAWAL_RATE = {"control": 0.02, "treatment": 0.12}
"""The worst case for the check: the treatment drives users away (a real effect, not a bug in
the assignment), so withdrawals thin the variants unevenly."""
NOW = START + pd.Timedelta(days=20)  # every simulated day is stored


def assigned(statistics: AbStatistics) -> dict[str, int]:
    return statistics.assignments.groupby("variant")["n_assigned"].sum().astype(int).to_dict()


def users_with(statistics: AbStatistics, metric: str) -> dict[str, int]:
    totals = statistics.metric_totals
    return totals[totals["metric"] == metric].set_index("variant")["n"].astype(int).to_dict()


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
    params = ab_parameters()
    settings = AbSettings.from_params(params)
    original = assigned(refresh(sqlite_url, params, NOW))  # the sums are stored before the purge
    weights = {"control": 1.0, "treatment": 1.0}
    engine = get_engine(sqlite_url)

    purge_withdrawn_users(
        engine, purge_id="p1", abandoned_after=pd.Timedelta(hours=2), ab_settings=settings
    )

    raw = "SELECT variant, COUNT(*) AS n_assigned FROM ab_test_assignments GROUP BY variant"
    frame = AppQueryDataset(sql=raw, credentials={"con": sqlite_url}).load()
    remaining = {str(row.variant): int(row.n_assigned) for row in frame.itertuples()}
    assert sum(remaining.values()) == len(assignments) - withdraws.sum()
    assert srm_p_value(remaining, weights) < settings.srm_alpha  # the alarm the counts prevent
    after = refresh(sqlite_url, params, NOW)
    assert assigned(after) == original
    assert srm_p_value(assigned(after), weights) == srm_p_value(original, weights)
    # the stored sums no longer count the withdrawn users (forget_users in the purge)
    assert users_with(after, "accepted") == remaining

    # the service routes withdrawn users again: their new rows go, and are not counted twice
    again = assignments[withdraws].head(300).assign(assigned_at=pd.Timestamp.now(tz="UTC"))
    again.to_sql("ab_test_assignments", engine, if_exists="append", index=False)
    purge_withdrawn_users(
        engine, purge_id="p2", abandoned_after=pd.Timedelta(hours=2), ab_settings=settings
    )
    final = refresh(sqlite_url, params, NOW)
    assert assigned(final) == original

    analysis = analyse_experiments(final, settings, analysed_at=datetime.now(UTC))
    decision = analysis.decisions.iloc[0]
    assert decision["srm_p_value"] > settings.srm_alpha
    assert decision["decision"] != "invalid"
