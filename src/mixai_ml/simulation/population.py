"""The demo world's users: consent states, hidden tastes, and the exclusions of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import MASTER_PARAM_NAMES, PRESETS
from mixai_ml.simulation.config import (
    EXCLUSIONS,
    USERS,
    WorldConfig,
    quota,
    stream,
)
from mixai_ml.simulation.styles import STYLES


def make_users(config: WorldConfig) -> pd.DataFrame:
    """Users with their consent state and hidden taste.

    Returns:
        One row per user: ``user_id``, ``consent_state``, ``favourite_preset``,
        ``activity`` (relative job rate, log-normal with ``user_model.activity_sd``: a few
        users come back for many jobs), ``style_weight_<style>`` (how likely their
        songs are in each style) and ``taste_<param>`` for the eight mastering parameters.
    """
    rng = stream(config.seed, USERS)
    n = config.n_users
    states = np.full(n, "granted", dtype=object)
    order = rng.permutation(n)
    start = 0
    for state, minimum in (("never_asked", 1), ("refused", 1), ("withdrawn", 3)):
        count = quota(config.consent[state], n, minimum)
        states[order[start : start + count]] = state
        start += count
    taste_sd = config.user_model["taste_sd"]
    users = pd.DataFrame(
        {
            "user_id": [f"U{number:06d}" for number in range(1, n + 1)],
            "consent_state": states,
            "favourite_preset": rng.choice(PRESETS, size=n),
            "activity": rng.lognormal(0.0, float(config.user_model["activity_sd"]), size=n),
        }
    )
    weights = rng.dirichlet(np.full(len(STYLES), 0.6), size=n)
    for k, style in enumerate(STYLES):
        users[f"style_weight_{style}"] = weights[:, k]
    for name in MASTER_PARAM_NAMES:
        users[f"taste_{name}"] = rng.normal(0.0, float(taste_sd[name]), size=n)
    return users


def consent_tables(
    config: WorldConfig, users: pd.DataFrame, jobs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ml_consent`` and ``ml_exclusions`` rows.

    Granted and refused users answered shortly before their first job; withdrawn users
    consented, made jobs, then withdrew (the first of them less than 6 hours before
    ``world_end``, inside the purge's 24-hour promise); never-asked users have no row.
    Exclusions: ``withdrawal`` rows for most withdrawn users, ``legal_hold`` on some
    withdrawn and some consenting users and on single jobs, ``quality`` on most
    defective jobs and on a spam account, ``manual`` on staff accounts and single jobs.
    """
    rng = stream(config.seed, EXCLUSIONS)
    first_job = jobs.groupby("user_id")["created_at"].min()
    end = config.world_end
    consent_rows, withdrawn_at = [], {}
    withdrawn_users = users.loc[users["consent_state"] == "withdrawn", "user_id"].tolist()
    for user in users.itertuples(index=False):
        if user.consent_state == "never_asked":
            continue
        answered = first_job[user.user_id] - pd.Timedelta(seconds=round(rng.uniform(60, 3 * 86400)))
        if user.consent_state == "withdrawn":
            earliest = first_job[user.user_id] + pd.Timedelta(hours=1)
            span = max((end - earliest).total_seconds(), 3600.0)
            recent = user.user_id == withdrawn_users[0]
            seconds = rng.uniform(600, 6 * 3600) if recent else rng.uniform(0, span)
            at = (
                end - pd.Timedelta(seconds=round(seconds))
                if recent
                else earliest + pd.Timedelta(seconds=round(seconds))
            )
            withdrawn_at[user.user_id] = min(at, end - pd.Timedelta(minutes=5))
        consent_rows.append(
            {
                "user_id": user.user_id,
                "consented": user.consent_state == "granted",
                "updated_at": withdrawn_at.get(user.user_id, answered),
                "withdrawn_at": withdrawn_at.get(user.user_id, pd.NaT),
            }
        )
    consent = pd.DataFrame(consent_rows)
    consent["withdrawn_at"] = pd.to_datetime(consent["withdrawn_at"], utc=True)

    ex = config.exclusions
    exclusions: list[dict[str, Any]] = []

    def exclude(
        user_id: str | None, job_id: str | None, reason: str, note: str, at: pd.Timestamp
    ) -> None:
        exclusions.append(
            {"user_id": user_id, "job_id": job_id, "reason": reason, "note": note, "created_at": at}
        )

    def some(candidates: list[str], count: int) -> list[str]:
        count = min(count, len(candidates))
        return sorted(rng.choice(candidates, size=count, replace=False).tolist()) if count else []

    n_withdrawn = len(withdrawn_users)
    for user_id in some(
        withdrawn_users, quota(ex["withdrawal_share_of_withdrawn"], n_withdrawn, 1)
    ):
        exclude(user_id, None, "withdrawal", "user withdrew ML consent", withdrawn_at[user_id])
    for user_id in some(
        withdrawn_users, quota(ex["legal_hold_share_of_withdrawn"], n_withdrawn, 1)
    ):
        at = withdrawn_at[user_id] + pd.Timedelta(minutes=30)
        exclude(
            user_id, None, "legal_hold", "legal hold: data preserved for a dispute", min(at, end)
        )
    granted = users.loc[users["consent_state"] == "granted", "user_id"].tolist()
    chosen = some(
        granted, int(ex["legal_hold_users"]) + int(ex["quality_users"]) + int(ex["manual_users"])
    )
    holds = chosen[: int(ex["legal_hold_users"])]
    spam = chosen[len(holds) : len(holds) + int(ex["quality_users"])]
    staff = chosen[len(holds) + len(spam) :]
    for reason, members, note in (
        ("legal_hold", holds, "legal hold: account under investigation"),
        ("quality", spam, "spam account: uploads are not music"),
        ("manual", staff, "staff test account"),
    ):
        for user_id in members:
            exclude(user_id, None, reason, note, first_job[user_id] + pd.Timedelta(days=1))
    job_ids = jobs["job_id"].tolist()
    created = jobs.set_index("job_id")["created_at"]
    for reason, count, note in (
        ("legal_hold", int(ex["legal_hold_jobs"]), "legal hold: copyright claim on this upload"),
        ("manual", int(ex["manual_jobs"]), "excluded on the user's support request"),
    ):
        for job_id in some(job_ids, max(count, 1)):
            exclude(None, job_id, reason, note, min(created[job_id] + pd.Timedelta(days=2), end))
    return consent, pd.DataFrame(exclusions)


def quality_exclusions(config: WorldConfig, jobs: pd.DataFrame, defects: pd.Series) -> pd.DataFrame:
    """``quality`` exclusions of the defective jobs support noticed (a share of them)."""
    rng = stream(config.seed, EXCLUSIONS, 1)
    defective = defects.dropna()
    flagged = defective[rng.random(len(defective)) < config.exclusions["quality_share_of_defects"]]
    created = jobs.set_index("job_id")["created_at"]
    return pd.DataFrame(
        {
            "user_id": None,
            "job_id": flagged.index,
            "reason": "quality",
            "note": [f"defective upload: {defect.replace('_', ' ')}" for defect in flagged],
            "created_at": [
                min(created[job] + pd.Timedelta(hours=6), config.world_end) for job in flagged.index
            ],
        }
    )
