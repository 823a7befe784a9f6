"""The 24-hour promise, measured: pending withdrawals, their deadlines, and completed ones.

A withdrawal (a user's ``ml_consent`` row saying they withdrew, at ``withdrawn_at``; see
:func:`~mixai_ml.privacy.targets.withdrawal_times`) must be purged by ``withdrawn_at + 24 h``
(CONTRACTS §4). It is *pending* until a purge run has cleaned every place of that user after
that withdrawal, which the run records in ``purge_withdrawals``; a user under a user-level
legal hold is *held* instead (the promise does not apply). The admin console and
``monitoring`` read the same figures through :func:`privacy_status`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from mixai_ml.datasets.sql import to_utc, utc_timestamp
from mixai_ml.db import schema
from mixai_ml.governance import legal_holds
from mixai_ml.privacy.targets import read_withdrawn, withdrawal_times

PURGE_DEADLINE = pd.Timedelta(hours=24)
"""CONTRACTS §4: a withdrawn user's data is gone within 24 hours of ``withdrawn_at``."""

LEVELS = ("ok", "warning", "critical", "missed")
"""Status of the oldest pending withdrawal: younger than the warning age, older than it,
older than the critical age, older than the deadline."""

PENDING_COLUMNS = (
    "user_id",
    "withdrawn_at",
    "deadline",
    "age",
    "age_h",
    "hours_left",
    "overdue",
)

_SAME_WITHDRAWAL = pd.Timedelta(seconds=1)  # tolerance of a timestamp's round trip


def _hours(delta: pd.Series | pd.Timedelta) -> Any:
    return delta / pd.Timedelta(hours=1)


def recorded_mask(withdrawals: pd.DataFrame, recorded: pd.DataFrame) -> pd.Series:
    """Whether each withdrawal (``user_id``, ``withdrawn_at``) has a completion record.

    A record of the same user at (or after) the withdrawal's time completes it; an older one
    belongs to an earlier withdrawal (the user consented again since).
    """
    if recorded.empty or withdrawals.empty:
        return pd.Series(False, index=withdrawals.index)
    latest = recorded.groupby("user_id")["withdrawn_at"].max()
    done = withdrawals["user_id"].map(latest)
    return (done >= withdrawals["withdrawn_at"] - _SAME_WITHDRAWAL).fillna(False).astype(bool)


def _read(engine: Engine) -> tuple[pd.DataFrame, frozenset[str], pd.DataFrame]:
    """Withdrawals, users under a user-level hold, and the completion records."""
    with engine.connect() as connection:
        consent, holds = read_withdrawn(connection)
        recorded = pd.read_sql_query(select(schema.purge_withdrawals), connection)
    held_users, _ = legal_holds(holds)
    recorded = to_utc(recorded, ["withdrawn_at", "purged_at"]).astype({"user_id": str})
    return withdrawal_times(consent), held_users, recorded


def _pending(
    withdrawals: pd.DataFrame, held: frozenset[str], recorded: pd.DataFrame, now: pd.Timestamp
) -> pd.DataFrame:
    open_ = withdrawals[~withdrawals["user_id"].isin(held)]
    open_ = open_[~recorded_mask(open_, recorded)].sort_values("withdrawn_at", kind="stable")
    deadline = open_["withdrawn_at"] + PURGE_DEADLINE
    age = (now - open_["withdrawn_at"]).clip(lower=pd.Timedelta(0))
    return pd.DataFrame(
        {
            "user_id": open_["user_id"],
            "withdrawn_at": open_["withdrawn_at"],
            "deadline": deadline,
            "age": age,
            "age_h": _hours(age),
            "hours_left": _hours(deadline - now),
            "overdue": deadline < now,
        },
        columns=list(PENDING_COLUMNS),
    ).reset_index(drop=True)


def pending_withdrawals(engine: Engine, now: datetime | pd.Timestamp) -> pd.DataFrame:
    """The withdrawals no purge has completed yet, oldest first.

    Args:
        engine: The application database.
        now: The time to measure ages at (UTC; a naive value is taken as UTC).

    Returns:
        One row per pending withdrawal: ``user_id``, ``withdrawn_at``, ``deadline``
        (``withdrawn_at`` + 24 h), ``age`` (a ``Timedelta``) and ``age_h`` (hours),
        ``hours_left`` (negative once overdue) and ``overdue``. Users under a user-level
        legal hold are not pending.
    """
    withdrawals, held, recorded = _read(engine)
    return _pending(withdrawals, held, recorded, utc_timestamp(now))


@dataclass(frozen=True)
class PrivacyStatus:
    """The purge's figures at one time: what ``monitoring`` and the admin console show."""

    checked_at: pd.Timestamp
    pending: int
    overdue: int
    held: int
    oldest_withdrawn_at: pd.Timestamp | None
    oldest_age_h: float | None
    oldest_deadline: pd.Timestamp | None
    level: str
    """One of :data:`LEVELS`."""
    completed: int
    """Withdrawals made in the lookback window and completed."""
    completed_late: int
    """... of which completed after their deadline."""
    late_recently: int
    """Withdrawals that purges of the last ``late_window`` completed after their deadline:
    a deadline missed while nothing measured is still reported afterwards."""
    purge_hours_median: float | None
    purge_hours_max: float | None
    last_run_status: str | None
    last_run_started_at: pd.Timestamp | None
    last_success_at: pd.Timestamp | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO text."""
        return {
            key: value.isoformat() if isinstance(value, pd.Timestamp) else value
            for key, value in asdict(self).items()
        }


def _level(age_h: float | None, warning_h: float, critical_h: float) -> str:
    if age_h is None or age_h < warning_h:
        return "ok"
    if age_h < critical_h:
        return "warning"
    return "critical" if age_h < _hours(PURGE_DEADLINE) else "missed"


def _runs(engine: Engine) -> pd.DataFrame:
    runs = schema.purge_runs
    query = select(runs.c.status, runs.c.started_at, runs.c.finished_at).order_by(
        runs.c.started_at.desc()
    )
    with engine.connect() as connection:
        frame = pd.read_sql_query(query, connection)
    return to_utc(frame, ["started_at", "finished_at"])


def privacy_status(
    engine: Engine,
    now: datetime | pd.Timestamp,
    *,
    warning_age_h: float,
    critical_age_h: float,
    lookback: pd.Timedelta,
    late_window: pd.Timedelta,
) -> PrivacyStatus:
    """Pending withdrawals, the oldest one's age against the deadline, and how fast the
    withdrawals of the last ``lookback`` were completed.

    The thresholds and windows are ``monitoring.privacy`` in ``parameters_monitoring.yml``
    (:class:`~mixai_ml.monitoring.privacy.PrivacySettings`).

    Args:
        engine: The application database.
        now: The time to measure at (UTC).
        warning_age_h, critical_age_h: Ages of the oldest pending withdrawal that make the
            level ``warning`` and ``critical`` (past 24 h it is ``missed``).
        lookback: Completed withdrawals are measured over those made this long before ``now``.
        late_window: Late completions are counted over the purges of this long before
            ``now``; at least the time between two monitoring runs, so that each is reported.
    """
    if not 0 < warning_age_h <= critical_age_h < _hours(PURGE_DEADLINE):
        raise ValueError(
            "the privacy thresholds need 0 < warning_age_h <= critical_age_h < 24 (hours), "
            f"got {warning_age_h} and {critical_age_h}: fix monitoring.privacy in "
            "conf/base/parameters_monitoring.yml"
        )
    moment = utc_timestamp(now)
    withdrawals, held, recorded = _read(engine)
    pending = _pending(withdrawals, held, recorded, moment)
    recent = recorded[recorded["withdrawn_at"] >= moment - lookback]
    took = _hours(recent["purged_at"] - recent["withdrawn_at"])
    just_purged = recorded[recorded["purged_at"].between(moment - late_window, moment)]
    late = just_purged["purged_at"] - just_purged["withdrawn_at"] > PURGE_DEADLINE
    runs = _runs(engine)
    succeeded = runs[runs["status"] == "succeeded"]
    oldest = pending.iloc[0] if len(pending) else None
    oldest_age = None if oldest is None else float(oldest["age_h"])
    return PrivacyStatus(
        checked_at=moment,
        pending=len(pending),
        overdue=int(pending["overdue"].sum()),
        held=len(set(withdrawals["user_id"]) & held),
        oldest_withdrawn_at=None if oldest is None else oldest["withdrawn_at"],
        oldest_age_h=oldest_age,
        oldest_deadline=None if oldest is None else oldest["deadline"],
        level=_level(oldest_age, warning_age_h, critical_age_h),
        completed=len(recent),
        completed_late=int((took > _hours(PURGE_DEADLINE)).sum()),
        late_recently=int(late.sum()),
        purge_hours_median=float(took.median()) if len(took) else None,
        purge_hours_max=float(took.max()) if len(took) else None,
        last_run_status=str(runs["status"].iloc[0]) if len(runs) else None,
        last_run_started_at=runs["started_at"].iloc[0] if len(runs) else None,
        last_success_at=succeeded["finished_at"].iloc[0] if len(succeeded) else None,
    )
