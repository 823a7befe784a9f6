"""Who may be trained on: consent states and exclusions of all four reasons."""

from __future__ import annotations

import pandas as pd

from mixai_ml.governance import (
    consenting_users,
    eligible_jobs,
    exclusion_reason_per_job,
    protected_by_legal_hold,
    withdrawn_users,
)

T0 = pd.Timestamp("2026-06-01", tz="UTC")


def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Users: ok (consented), ok2 (consented), never (no row), refused, gone (withdrawn), held."""
    consent = pd.DataFrame(
        {
            "user_id": ["ok", "ok2", "refused", "gone", "held"],
            "consented": [True, True, False, True, False],
            "updated_at": T0,
            "withdrawn_at": [pd.NaT, pd.NaT, pd.NaT, T0, T0],
        }
    )
    jobs = pd.DataFrame(
        {
            "job_id": ["a1", "a2", "a3", "a4", "b1", "n1", "r1", "g1", "h1"],
            "user_id": ["ok", "ok", "ok", "ok", "ok2", "never", "refused", "gone", "held"],
        }
    )
    exclusions = pd.DataFrame(
        {
            "exclusion_id": ["x1", "x2", "x3", "x4", "x5"],
            "user_id": [None, None, "ok2", "held", None],
            "job_id": ["a2", "a3", None, None, "a3"],
            "reason": ["quality", "manual", "manual", "legal_hold", "legal_hold"],
        }
    )
    return jobs, consent, exclusions


def test_consent_states() -> None:
    _, consent, _ = world()
    assert consenting_users(consent) == {"ok", "ok2"}
    # docs/data_contracts.md §2: consented false or withdrawn_at set is a withdrawal
    assert withdrawn_users(consent) == {"refused", "gone", "held"}


def test_exclusion_reason_prefers_legal_hold_and_covers_user_level() -> None:
    jobs, _, exclusions = world()
    reasons = exclusion_reason_per_job(jobs, exclusions).set_axis(jobs["job_id"])
    assert reasons["a2"] == "quality"
    assert reasons["a3"] == "legal_hold"  # manual and legal_hold: legal_hold counts first
    assert reasons["b1"] == "manual"  # user-level
    assert reasons["h1"] == "legal_hold"
    assert pd.isna(reasons["a1"])
    assert pd.isna(reasons["g1"])


def test_eligible_jobs_and_counts_per_reason() -> None:
    jobs, consent, exclusions = world()
    result = eligible_jobs(jobs, consent, exclusions)
    assert result.eligible["job_id"].tolist() == ["a1", "a4"]
    assert result.counts == {
        "labelled": 9,
        "no_consent": 1,
        "withdrawn": 3,
        "excluded_legal_hold": 1,
        "excluded_withdrawal": 0,
        "excluded_quality": 1,
        "excluded_manual": 1,
        "eligible": 2,
    }
    dropped = sum(v for k, v in result.counts.items() if k not in {"labelled", "eligible"})
    assert dropped + result.counts["eligible"] == result.counts["labelled"]


def test_legal_hold_protects_user_and_job_level() -> None:
    jobs, _, exclusions = world()
    held = protected_by_legal_hold(jobs, exclusions).set_axis(jobs["job_id"])
    assert held[held].index.tolist() == ["a3", "h1"]
