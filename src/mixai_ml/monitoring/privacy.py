"""Monitoring's privacy figure: the oldest withdrawal the purge has not completed, against the
24-hour deadline of CONTRACTS §4 (docs/monitoring.md, docs/privacy.md).

The figures come from :func:`mixai_ml.privacy.privacy_status` (the admin console lists the
same :func:`~mixai_ml.privacy.pending_withdrawals`). They are measured at the wall clock (or
at the ``reference_time`` parameter when set): the promise runs in real time, whatever the
newest prediction in ``model_metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from mixai_ml.ab.formatting import number
from mixai_ml.monitoring.alerts import ALERT_COLUMNS
from mixai_ml.parameters import settings_section
from mixai_ml.privacy import PURGE_DEADLINE, PrivacyStatus, privacy_status

PRIVACY_TASK = "privacy"
"""The ``task`` of the privacy row in the summary and of its alerts."""
PRIVACY_WINDOW = "now"
AGE_METRIC = "oldest_pending_withdrawal_age_h"
LATE_METRIC = "withdrawals_purged_late"

_DEADLINE_H = PURGE_DEADLINE / pd.Timedelta(hours=1)


@dataclass(frozen=True)
class PrivacySettings:
    """``monitoring.privacy`` in ``parameters_monitoring.yml``."""

    warning_age_h: float
    critical_age_h: float
    lookback: pd.Timedelta
    late_window: pd.Timedelta

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PrivacySettings:
        """Settings from the ``monitoring`` parameters' ``privacy`` section.

        Raises:
            ValueError: A missing or unknown key (the levels' order is checked by
                :func:`~mixai_ml.privacy.privacy_status`).
        """
        privacy = settings_section(
            params.get("privacy"),
            "monitoring.privacy",
            required=("warning_age_h", "critical_age_h", "lookback_days", "late_alert_days"),
        )
        return cls(
            warning_age_h=float(privacy["warning_age_h"]),
            critical_age_h=float(privacy["critical_age_h"]),
            lookback=pd.Timedelta(days=float(privacy["lookback_days"])),
            late_window=pd.Timedelta(days=float(privacy["late_alert_days"])),
        )

    def status(self, engine: Engine, now: pd.Timestamp) -> PrivacyStatus:
        """The purge's figures at ``now`` with these thresholds."""
        return privacy_status(
            engine,
            now,
            warning_age_h=self.warning_age_h,
            critical_age_h=self.critical_age_h,
            lookback=self.lookback,
            late_window=self.late_window,
        )

    def limit(self, level: str) -> float:
        """The age (hours) a level starts at."""
        return {"warning": self.warning_age_h, "critical": self.critical_age_h}.get(
            level, _DEADLINE_H
        )


def privacy_row(status: PrivacyStatus) -> pd.DataFrame:
    """The summary's privacy row: pending and overdue withdrawals, the oldest one's age."""
    return pd.DataFrame(
        {
            "window": [PRIVACY_WINDOW],
            "window_start": [status.checked_at],
            "window_end": [status.checked_at],
            "task": [PRIVACY_TASK],
            "pending_withdrawals": [status.pending],
            "overdue_withdrawals": [status.overdue],
            AGE_METRIC: [status.oldest_age_h],
        }
    )


def privacy_alerts(status: PrivacyStatus, settings: PrivacySettings) -> pd.DataFrame:
    """The purge's alerts: the oldest pending withdrawal past the warning age, with the highest
    level it reached (``limit``: 12 h warning, 20 h critical, 24 h deadline missed); and the
    withdrawals that purges of the last ``late_alert_days`` completed after their deadline
    (``limit`` 0), so that a deadline missed between two monitoring runs is reported too."""
    alerts = []
    if status.level != "ok" and status.oldest_age_h is not None:
        alerts.append(
            {
                "metric": AGE_METRIC,
                "value": status.oldest_age_h,
                "limit": settings.limit(status.level),
                "observations": status.pending,
            }
        )
    if status.late_recently:
        alerts.append(
            {
                "metric": LATE_METRIC,
                "value": float(status.late_recently),
                "limit": 0.0,
                "observations": status.late_recently,
            }
        )
    rows = [
        {"window": PRIVACY_WINDOW, "task": PRIVACY_TASK, "model_version": None, "bound": "max"}
        | alert
        for alert in alerts
    ]
    return pd.DataFrame(rows, columns=list(ALERT_COLUMNS))


_LEVEL_TEXT = {
    "ok": "OK",
    "warning": "WARNING",
    "critical": "CRITICAL",
    "missed": "DEADLINE MISSED",
}


def _time(value: Any) -> str:
    return "–" if value is None else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{number(value)} h"


def privacy_markdown(status: Mapping[str, Any], settings: PrivacySettings) -> list[str]:
    """The report's section on the 24-hour purge, from :meth:`PrivacyStatus.as_dict`."""
    level = _LEVEL_TEXT[status["level"]]
    if status["pending"] == 0:
        headline = f"no withdrawal waits for the purge ({_time(status['checked_at'])})."
    else:
        headline = (
            f"{status['pending']} withdrawal(s) wait for the purge, {status['overdue']} past "
            f"their deadline. The oldest was made {_hours(status['oldest_age_h'])} ago; its "
            f"deadline is {_time(status['oldest_deadline'])}."
        )
    last_run = status["last_run_status"] or "none"
    if status["last_run_started_at"] is not None:
        last_run += f" (started {_time(status['last_run_started_at'])})"
    return [
        "## Privacy: the 24-hour purge",
        "",
        f"**{level}**: {headline}",
        "",
        f"Levels by the oldest pending withdrawal's age: warning from "
        f"{settings.warning_age_h:g} h, critical from {settings.critical_age_h:g} h, deadline "
        f"missed after {_DEADLINE_H:g} h. Withdrawn users under a legal hold (kept, never "
        f"trained on): {status['held']}.",
        "",
        *(
            [
                f"**LATE**: {status['late_recently']} withdrawal(s) were purged after their "
                f"deadline in the last {settings.late_window.days} days.",
                "",
            ]
            if status["late_recently"]
            else []
        ),
        f"| last run | last successful run | completed (withdrawals of the last "
        f"{settings.lookback.days} days) | median time to purge | slowest | late |",
        "|---|---|---|---|---|---|",
        f"| {last_run} | {_time(status['last_success_at'])} | {status['completed']} "
        f"| {_hours(status['purge_hours_median'])} | {_hours(status['purge_hours_max'])} "
        f"| {status['completed_late']} |",
        "",
    ]
