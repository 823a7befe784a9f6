"""The 24-hour promise, measured: pending withdrawals, deadlines, levels and completions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pandas as pd
import pytest
from privacy_world import T0, seed, table

from mixai_ml.datasets import AppTableDataset
from mixai_ml.db import get_engine
from mixai_ml.monitoring.privacy import PrivacySettings
from mixai_ml.privacy import pending_withdrawals, purge_withdrawn_users

SETTINGS = PrivacySettings(
    warning_age_h=12,
    critical_age_h=20,
    lookback=pd.Timedelta(days=30),
    late_window=pd.Timedelta(days=7),
)
"""The thresholds and windows of parameters_monitoring.yml."""


def hours(h: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=h)


def purge_at(db_url: str, at: pd.Timestamp, purge_id: str) -> None:
    def clock() -> datetime:
        return at.to_pydatetime()

    purge_withdrawn_users(
        get_engine(db_url), purge_id=purge_id, abandoned_after=pd.Timedelta(hours=2), clock=clock
    )


def change_consent(db_url: str, user: str, consented: bool, at: pd.Timestamp) -> None:
    consent = table(db_url, "ml_consent").set_index("user_id")
    consent.loc[user, ["consented", "updated_at", "withdrawn_at"]] = [
        consented,
        at,
        pd.NaT if consented else at,
    ]
    AppTableDataset(table_name="ml_consent", credentials={"con": db_url}, write_mode="upsert").save(
        consent.reset_index()
    )


def test_pending_withdrawals_known_answers(db_url: str) -> None:
    seed(db_url)
    pending = pending_withdrawals(get_engine(db_url), hours(13))

    # held is under a legal hold: kept, not pending; refused counts from its updated_at (T0-24h)
    assert pending["user_id"].iloc[0] == "refused"
    assert set(pending["user_id"]) == {"refused", "gone", "hold_one"}
    rows = pending.set_index("user_id")
    assert rows.loc["refused", "age_h"] == pytest.approx(37.0)
    assert rows.loc["refused", "age"] == pd.Timedelta(hours=37)
    assert rows.loc["refused", "hours_left"] == pytest.approx(-13.0)
    assert bool(rows.loc["refused", "overdue"])
    assert rows.loc["gone", "deadline"] == hours(24)
    assert rows.loc["gone", "hours_left"] == pytest.approx(11.0)
    assert not rows.loc["gone", "overdue"]


def test_status_levels_follow_the_oldest_pending_withdrawal(db_url: str) -> None:
    seed(db_url)
    engine = get_engine(db_url)
    before = SETTINGS.status(engine, hours(13))
    assert (before.pending, before.overdue, before.held) == (3, 1, 1)
    assert before.level == "missed"
    assert before.oldest_age_h == pytest.approx(37.0)
    assert before.last_run_status is None

    purge_at(db_url, hours(14), "p1")
    after = SETTINGS.status(engine, hours(15))
    assert (after.pending, after.level, after.oldest_age_h) == (0, "ok", None)
    assert after.completed == 3
    assert after.completed_late == 1
    assert after.purge_hours_median == pytest.approx(14.0)
    assert after.purge_hours_max == pytest.approx(38.0)
    assert after.last_run_status == "succeeded"
    assert after.last_success_at == hours(14)

    change_consent(db_url, "ok", consented=False, at=hours(20))
    levels = {h: SETTINGS.status(engine, hours(h)).level for h in (25, 33, 41, 45)}
    assert levels == {25: "ok", 33: "warning", 41: "critical", 45: "missed"}
    thresholds = replace(SETTINGS, warning_age_h=14, critical_age_h=16).status(engine, hours(33))
    assert thresholds.level == "ok"
    as_json = SETTINGS.status(engine, hours(33)).as_dict()
    assert as_json["oldest_withdrawn_at"] == hours(20).isoformat()


def test_a_user_who_withdraws_again_is_pending_again(db_url: str) -> None:
    seed(db_url)
    purge_at(db_url, hours(1), "p1")
    change_consent(db_url, "gone", consented=True, at=hours(2))
    assert pending_withdrawals(get_engine(db_url), hours(3)).empty
    change_consent(db_url, "gone", consented=False, at=hours(4))
    pending = pending_withdrawals(get_engine(db_url), hours(5))
    assert pending["user_id"].tolist() == ["gone"]
    purge_at(db_url, hours(6), "p2")
    assert pending_withdrawals(get_engine(db_url), hours(7)).empty
    assert len(table(db_url, "purge_withdrawals").query("user_id == 'gone'")) == 2


def test_thresholds_are_checked(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match=r"parameters_monitoring\.yml"):
        replace(SETTINGS, warning_age_h=20, critical_age_h=12).status(get_engine(sqlite_url), T0)
    with pytest.raises(ValueError, match="< 24"):
        replace(SETTINGS, critical_age_h=30).status(get_engine(sqlite_url), T0)
    levels = {"warning_age_h": 12, "critical_age_h": 20, "lookback_days": 30}
    missing = r"monitoring\.privacy: missing setting\(s\) late_alert_days"
    with pytest.raises(ValueError, match=missing):
        PrivacySettings.from_params({"privacy": levels})
    misspelt = r"monitoring\.privacy: unknown setting\(s\) late_alert_day;"
    with pytest.raises(ValueError, match=misspelt):
        PrivacySettings.from_params({"privacy": levels | {"late_alert_day": 7}})


def test_a_deadline_missed_between_two_checks_is_still_reported(db_url: str) -> None:
    from mixai_ml.monitoring.privacy import LATE_METRIC, privacy_alerts

    seed(db_url)
    purge_at(db_url, hours(14), "p1")  # completes "refused" 38 h after its withdrawal
    engine = get_engine(db_url)

    after = SETTINGS.status(engine, hours(15))
    assert (after.pending, after.level, after.late_recently) == (0, "ok", 1)
    alerts = privacy_alerts(after, SETTINGS)
    assert alerts[["metric", "value", "limit"]].values.tolist() == [[LATE_METRIC, 1.0, 0.0]]

    # a week after that purge the alert has had its weekly report; before it, it had none
    assert SETTINGS.status(engine, hours(14 + 7 * 24 + 1)).late_recently == 0
    assert SETTINGS.status(engine, hours(13)).late_recently == 0
    assert privacy_alerts(SETTINGS.status(engine, hours(14 + 7 * 24 + 1)), SETTINGS).empty
