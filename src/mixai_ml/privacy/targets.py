"""What the purge removes: the withdrawn users and their jobs, minus what a legal hold keeps.

One rule decides every row and every file line, whatever holds it (CONTRACTS §4): a row goes
when its ``job_id`` is a withdrawn user's job without a legal hold, or when its ``user_id`` is
a withdrawn user without a user-level legal hold and its job (if it names one) is not held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from sqlalchemy import Connection, or_, select

from mixai_ml.datasets.sql import to_utc
from mixai_ml.db import schema
from mixai_ml.governance import legal_holds, withdrawn_users


def read_withdrawn(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ml_consent`` rows of withdrawn users (times in UTC) and the legal holds of
    ``ml_exclusions``: all the purge needs of the app's consent records."""
    consent = schema.ml_consent
    exclusions = schema.ml_exclusions
    rows = pd.read_sql_query(
        select(consent).where(
            or_(consent.c.consented.is_(False), consent.c.withdrawn_at.is_not(None))
        ),
        connection,
    )
    holds = pd.read_sql_query(
        select(exclusions).where(exclusions.c.reason == "legal_hold"), connection
    )
    return to_utc(rows, ["updated_at", "withdrawn_at"]), holds


def withdrawal_times(consent: pd.DataFrame) -> pd.DataFrame:
    """One row per withdrawn user: ``user_id`` and when they withdrew (UTC).

    The time is ``withdrawn_at``; a row that says ``consented`` false without one (consent
    refused) counts from its ``updated_at``. The 24-hour deadline runs from this time.
    """
    rows = consent[consent["user_id"].astype(str).isin(withdrawn_users(consent))]
    at = pd.to_datetime(rows["withdrawn_at"], utc=True).fillna(
        pd.to_datetime(rows["updated_at"], utc=True)
    )
    return pd.DataFrame(
        {"user_id": rows["user_id"].astype(str).to_numpy(), "withdrawn_at": at.to_numpy()}
    ).astype({"withdrawn_at": "datetime64[ns, UTC]"})


@dataclass(frozen=True)
class PurgeTargets:
    """The users and jobs whose data goes, read once per run from the app's tables.

    Attributes:
        withdrawals: ``user_id``, ``withdrawn_at`` of the withdrawn users whose data goes
            (those under a user-level legal hold are in ``held_users`` instead).
        jobs: job id -> owner, for the withdrawn users' jobs without a legal hold.
        held_jobs: job id -> owner, for the withdrawn users' jobs under a job-level hold.
        held_users: withdrawn users under a user-level hold: everything of theirs stays.
    """

    withdrawals: pd.DataFrame
    jobs: Mapping[str, str]
    held_jobs: Mapping[str, str]
    held_users: frozenset[str]

    @classmethod
    def from_tables(
        cls, jobs: pd.DataFrame, consent: pd.DataFrame, exclusions: pd.DataFrame
    ) -> PurgeTargets:
        """From ``jobs`` (``job_id``, ``user_id``), ``ml_consent`` and ``ml_exclusions``."""
        withdrawals = withdrawal_times(consent)
        held_user_ids, held_job_ids = legal_holds(exclusions)
        held = withdrawals["user_id"].isin(held_user_ids)
        owners = jobs.astype({"job_id": str, "user_id": str})
        owners = owners[owners["user_id"].isin(set(withdrawals.loc[~held, "user_id"]))]
        job_held = owners["job_id"].isin(held_job_ids)
        return cls(
            withdrawals=withdrawals[~held].reset_index(drop=True),
            jobs=owners[~job_held].set_index("job_id")["user_id"].to_dict(),
            held_jobs=owners[job_held].set_index("job_id")["user_id"].to_dict(),
            held_users=frozenset(withdrawals.loc[held, "user_id"]),
        )

    @property
    def users(self) -> frozenset[str]:
        """The withdrawn users whose data goes."""
        return frozenset(self.withdrawals["user_id"])

    @property
    def empty(self) -> bool:
        return self.withdrawals.empty

    def owner_of(self) -> dict[str, str]:
        """Every id to purge (users and jobs) -> the user it belongs to."""
        return {**{user: user for user in self.users}, **self.jobs}

    @cached_property
    def id_tokens(self) -> IdTokens:
        """Finds the ids to purge in text."""
        return IdTokens(self.owner_of())

    def held_jobs_of(self, users: Iterable[str]) -> list[str]:
        """The held jobs of ``users`` (they stay even when their user's other rows go)."""
        chosen = set(users)
        return sorted(job for job, owner in self.held_jobs.items() if owner in chosen)

    def rows_to_remove(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` (with ``job_id`` and/or ``user_id`` columns) go."""
        remove = np.zeros(len(frame), dtype=bool)
        job = frame["job_id"].astype("string") if "job_id" in frame else None
        if job is not None:
            remove |= job.isin(set(self.jobs)).fillna(False).to_numpy(dtype=bool)
        if "user_id" in frame:
            by_user = frame["user_id"].astype("string").isin(self.users).fillna(False)
            if job is not None:
                by_user &= ~job.isin(set(self.held_jobs)).fillna(False)
            remove |= by_user.to_numpy(dtype=bool)
        return remove

    def owners(self, frame: pd.DataFrame) -> pd.Series:
        """The user each row of ``frame`` belongs to: its job's owner, else its ``user_id``."""
        owner = pd.Series(pd.NA, index=frame.index, dtype="string")
        if "user_id" in frame:
            owner = frame["user_id"].astype("string")
        if "job_id" in frame:
            by_job = frame["job_id"].astype("string").map(self.jobs).astype("string")
            owner = by_job.fillna(owner)
        return owner


class IdTokens:
    """Finds the targets' ids in text: runs of the characters ids are made of, looked up."""

    def __init__(self, owner_of: dict[str, str]) -> None:
        self.owner_of = {key.encode(): owner for key, owner in owner_of.items()}
        alphabet = sorted(set(b"".join(self.owner_of)))
        characters = b"".join(re.escape(bytes([c])) for c in alphabet)
        self._runs = re.compile(b"[" + characters + b"]+") if alphabet else None

    def find(self, data: bytes) -> list[tuple[int, int, str]]:
        """``(start, end, owner)`` of every id in ``data``."""
        if self._runs is None:
            return []
        found = []
        for match in self._runs.finditer(data):
            owner = self.owner_of.get(match.group())
            if owner is not None:
                found.append((match.start(), match.end(), owner))
        return found


def count_per_user(owners: pd.Series) -> pd.Series:
    """How many entries each user has in ``owners`` (an empty int series for none)."""
    if owners.empty:
        return pd.Series(dtype="int64")
    return owners.astype(str).value_counts().sort_index().astype("int64")
