"""Who may be learned from: consent, withdrawal and exclusions (docs/data_contracts.md §2).

A user's data is used only with their consent. A user has consented when their
``ml_consent`` row says ``consented`` and has no ``withdrawn_at``; a user with no
row never consented; a user whose row says ``consented`` false or has a
``withdrawn_at`` has withdrawn. Exclusions remove a user or a single job, for
any of the four reasons. Legal holds keep data from the purge but never make it
trainable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

EXCLUSION_PRIORITY = ("legal_hold", "withdrawal", "quality", "manual")
"""When several exclusions cover a job, it is counted under the first of these."""


def withdrawn_users(consent: pd.DataFrame) -> set[str]:
    """Users whose consent row says they withdrew (``consented`` false or ``withdrawn_at`` set)."""
    withdrawn = ~consent["consented"].astype(bool) | consent["withdrawn_at"].notna()
    return set(consent.loc[withdrawn, "user_id"].astype(str))


def consenting_users(consent: pd.DataFrame) -> set[str]:
    """Users who consented and have not withdrawn."""
    return set(consent["user_id"].astype(str)) - withdrawn_users(consent)


def exclusion_reason_per_job(jobs: pd.DataFrame, exclusions: pd.DataFrame) -> pd.Series:
    """The exclusion reason covering each job (user- or job-level), or NA.

    Args:
        jobs: ``job_id`` and ``user_id`` columns.
        exclusions: rows of ``ml_exclusions``.

    Returns:
        A string series indexed like ``jobs``; where several exclusions apply,
        the first reason in :data:`EXCLUSION_PRIORITY`.
    """
    rank = {reason: position for position, reason in enumerate(EXCLUSION_PRIORITY)}
    keys = jobs[["job_id", "user_id"]].astype(str)
    job_level = exclusions.dropna(subset=["job_id"])[["job_id", "reason"]].astype(str)
    user_level = exclusions[exclusions["job_id"].isna()].dropna(subset=["user_id"])
    matches = pd.concat(
        [
            keys.merge(job_level, on="job_id"),
            keys.merge(user_level[["user_id", "reason"]].astype(str), on="user_id"),
        ]
    )
    first_reason = (
        matches.assign(rank=matches["reason"].map(rank))
        .sort_values("rank", kind="stable")
        .drop_duplicates("job_id")
        .set_index("job_id")["reason"]
    )
    return keys["job_id"].map(first_reason).astype("string")


def legal_holds(exclusions: pd.DataFrame) -> tuple[frozenset[str], frozenset[str]]:
    """Users and jobs under a ``legal_hold`` exclusion (a user-level row has no ``job_id``)."""
    holds = exclusions[exclusions["reason"] == "legal_hold"]
    users = holds.loc[holds["job_id"].isna(), "user_id"].dropna().astype(str)
    return frozenset(users), frozenset(holds["job_id"].dropna().astype(str))


def protected_by_legal_hold(jobs: pd.DataFrame, exclusions: pd.DataFrame) -> pd.Series:
    """Whether each job is under a legal hold (user- or job-level): the purge keeps it."""
    held_users, held_jobs = legal_holds(exclusions)
    return jobs["job_id"].astype(str).isin(held_jobs) | jobs["user_id"].astype(str).isin(held_users)


@dataclass(frozen=True)
class Eligibility:
    """The labelled jobs that may be trained on, and why the others may not."""

    eligible: pd.DataFrame
    counts: dict[str, int]


def eligible_jobs(
    labelled_jobs: pd.DataFrame, consent: pd.DataFrame, exclusions: pd.DataFrame
) -> Eligibility:
    """Filter labelled jobs down to those whose users allow training.

    Args:
        labelled_jobs: one row per labelled job with ``job_id`` and ``user_id``.
        consent: rows of ``ml_consent``.
        exclusions: rows of ``ml_exclusions``.

    Returns:
        The eligible rows and the number of rows dropped per reason
        (``no_consent``, ``withdrawn``, ``excluded_<reason>``), plus ``labelled``
        and ``eligible`` totals. Each dropped row counts under its first reason.
    """
    users = labelled_jobs["user_id"].astype(str)
    withdrawn = users.isin(withdrawn_users(consent))
    no_consent = ~users.isin(set(consent["user_id"].astype(str)))
    reason = exclusion_reason_per_job(labelled_jobs, exclusions)
    counts = {"labelled": len(labelled_jobs), "no_consent": int(no_consent.sum())}
    counts["withdrawn"] = int((withdrawn & ~no_consent).sum())
    allowed = ~(withdrawn | no_consent)
    for name in EXCLUSION_PRIORITY:
        counts[f"excluded_{name}"] = int((allowed & (reason == name).fillna(False)).sum())
    eligible = labelled_jobs[allowed & reason.isna()]
    counts["eligible"] = len(eligible)
    return Eligibility(eligible=eligible, counts=counts)
