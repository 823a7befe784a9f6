"""Done when (issue 12): after the demo world, more withdrawals and a purge, no table and no file
under ``data/`` holds a withdrawn user without a legal hold; a withdrawal waiting too long is
reported by ``monitoring`` before and not after."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from mixai_ml.governance import legal_holds, withdrawn_users
from mixai_ml.monitoring.privacy import AGE_METRIC, LATE_METRIC
from project_copy import run_pipelines
from tiny_world import TINY

pytestmark = pytest.mark.slow  # two runs on a copy of the tiny world

APP_RECORDS = {"jobs", "ml_consent", "ml_exclusions"}
"""The app's own tables: a user who withdraws ML consent still uses MIXAI."""
PURGE_RECORDS = {"purge_audit", "purge_withdrawals"}
"""The record of each deletion (who, where, when), kept on purpose."""


def read(database: Path, sql: str) -> pd.DataFrame:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return pd.read_sql_query(text(sql), connection)
    finally:
        engine.dispose()


def execute(database: Path, sql: str, rows: list[dict[str, object]]) -> None:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), rows)
    finally:
        engine.dispose()


def ids_to_be_gone(database: Path) -> set[str]:
    """Withdrawn users with no legal hold at all, and every job of withdrawn users not held."""
    consent = read(database, "SELECT * FROM ml_consent")
    exclusions = read(database, "SELECT * FROM ml_exclusions")
    jobs = read(database, "SELECT job_id, user_id FROM jobs")
    withdrawn = withdrawn_users(consent)
    held_users, held_jobs = legal_holds(exclusions)
    owners_of_held_jobs = set(jobs.loc[jobs["job_id"].isin(held_jobs), "user_id"])
    users = withdrawn - held_users - owners_of_held_jobs
    purged_jobs = jobs[
        jobs["user_id"].isin(withdrawn - held_users) & ~jobs["job_id"].isin(held_jobs)
    ]
    return users | set(purged_jobs["job_id"])


def places_holding(project: Path, ids: set[str]) -> set[str]:
    """Every table (but the app's and the purge's records) and every file under ``data/`` (but
    the database) where one of ``ids`` appears, in contents or name, as ``place: id``."""
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, sorted(ids))) + r")(?![A-Za-z0-9])"
    )
    database = project / "data" / "mixai.db"
    found: set[str] = set()
    for name in inspect(create_engine(f"sqlite:///{database}")).get_table_names():
        if name in APP_RECORDS | PURGE_RECORDS:
            continue
        frame = read(database, f"SELECT * FROM {name}")
        for column in frame.columns:
            values = frame[column].dropna().astype(str)
            for value in values[values.str.contains(pattern)]:
                found |= {f"table {name}.{column}: {hit}" for hit in pattern.findall(value)}
    for path in sorted((project / "data").rglob("*")):
        if not path.is_file() or path == database:
            continue
        relative = path.relative_to(project).as_posix()
        found |= {f"name {relative}: {hit}" for hit in pattern.findall(relative)}
        contents = path.read_bytes().decode("utf-8", errors="ignore")
        if path.suffix == ".parquet":
            contents = pd.read_parquet(path).astype(str).to_csv()
        found |= {f"file {relative}: {hit}" for hit in pattern.findall(contents)}
    return found


def withdraw_users(project: Path, at: pd.Timestamp) -> list[str]:
    """Withdraw consenting users without legal holds, some with test predictions (so with data
    in every place): the first at ``at`` − 30 h (its deadline is missed), the others at
    ``at`` − 2 h."""
    database = project / "data" / "mixai.db"
    consent = read(database, "SELECT * FROM ml_consent")
    jobs = read(database, "SELECT job_id, user_id FROM jobs")
    held_users, held_jobs = legal_holds(read(database, "SELECT * FROM ml_exclusions"))
    held_users |= set(jobs.loc[jobs["job_id"].isin(held_jobs), "user_id"])
    free = consent.loc[consent["consented"].astype(bool) & consent["withdrawn_at"].isna()]
    free = set(free["user_id"]) - held_users
    inputs = project / "data" / "05_model_input" / "master_reg" / "model_input.parquet"
    predictions = project / "data" / "07_model_output" / "master_reg" / "test_predictions.parquet"
    tested = sorted(free & set(pd.read_parquet(predictions)["user_id"]))
    trained = sorted(free & set(pd.read_parquet(inputs)["user_id"]) - set(tested))
    chosen = tested[:2] + trained[:3]
    times = [at - pd.Timedelta(hours=30), *[at - pd.Timedelta(hours=2)] * (len(chosen) - 1)]
    execute(
        database,
        "UPDATE ml_consent SET consented = 0, withdrawn_at = :at WHERE user_id = :user",
        [
            {"user": user, "at": when.strftime("%Y-%m-%d %H:%M:%S.%f")}
            for user, when in zip(chosen, times, strict=True)
        ],
    )
    return chosen


def write_journal(project: Path) -> None:
    """A leftover journal of the service: the model_metrics rows of every user."""
    rows = read(project / "data" / "mixai.db", "SELECT * FROM model_metrics")
    folder = project / "data" / "01_raw" / "journals"
    folder.mkdir(parents=True)
    with open(folder / "model_metrics-000001.jsonl", "w") as journal:
        for row in rows.to_dict("records"):
            journal.write(json.dumps(row, default=str) + "\n")


def privacy_row(project: Path) -> pd.Series:
    summary = pd.read_csv(project / "data" / "08_reporting" / "monitoring_summary.csv")
    return summary[summary["task"] == "privacy"].iloc[0]


def privacy_alerts(project: Path) -> dict[str, tuple[float, float]]:
    """The privacy alerts of the last monitoring run: metric -> (value, limit)."""
    alerts = pd.read_csv(project / "data" / "08_reporting" / "monitoring_alerts.csv")
    alerts = alerts[alerts["task"] == "privacy"]
    return {row.metric: (row.value, row.limit) for row in alerts.itertuples()}


@pytest.fixture(scope="module")
def project(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("purge") / "project"
    # without the jobs' audio: the app's uploads, which a withdrawal of ML consent leaves alone
    shutil.copytree(tiny_project, copy, ignore=shutil.ignore_patterns("audio", "build"))
    return copy


def test_no_table_or_file_holds_a_withdrawn_user_after_the_purge(project: Path) -> None:
    database = project / "data" / "mixai.db"
    now = pd.Timestamp.now(tz="UTC")
    withdrawn = withdraw_users(project, now)
    write_journal(project)
    run_pipelines(project, ["monitoring"], TINY)
    late = privacy_row(project)
    assert late["pending_withdrawals"] == len(withdrawn) >= 3
    assert late["overdue_withdrawals"] == 1
    alerts = privacy_alerts(project)
    assert alerts[AGE_METRIC] == (pytest.approx(30.0, abs=0.5), 24.0)
    # the tiny world's own withdrawals (before its end, 2026-11-01) were purged late by its
    # first purge: reported for a week
    purged_late = alerts[LATE_METRIC][0]
    assert purged_late >= 1

    ids = ids_to_be_gone(database)
    assert set(withdrawn) <= ids
    before = places_holding(project, ids)
    places = {hit.split(":")[0].split(".")[0] for hit in before}
    assert {
        "table features_store",
        "table labels",
        "table model_metrics",
        "table ab_test_assignments",
        "table ab_test_metrics",
        "file data/04_feature/features",
        "file data/01_raw/journals/model_metrics-000001",
        "file data/01_raw/ground_truth_users",
    } <= places
    assert any("model_input" in place for place in places)
    assert any("test_predictions" in place for place in places)

    run_pipelines(project, ["purge", "monitoring"], TINY)

    assert places_holding(project, ids) == set()
    done = privacy_row(project)
    assert done["pending_withdrawals"] == 0
    assert privacy_alerts(project) == {LATE_METRIC: (purged_late + 1, 0.0)}
    summary = json.loads((project / "data" / "08_reporting" / "purge_summary.json").read_text())
    assert summary["withdrawals_completed"] == len(withdrawn)

    # legal holds kept: withdrawn users under one still have their labels
    held_users, _ = legal_holds(read(database, "SELECT * FROM ml_exclusions"))
    held_withdrawn = held_users & withdrawn_users(read(database, "SELECT * FROM ml_consent"))
    labels = read(database, "SELECT j.user_id FROM labels l JOIN jobs j ON j.job_id = l.job_id")
    assert held_withdrawn
    assert held_withdrawn <= set(labels["user_id"])
