"""The demo_data pipeline through Kedro, on each supported database (tiny world)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine

from mixai_inference import load_audio
from project_copy import copy_project, run_pipelines

TABLES = (
    "jobs",
    "ml_consent",
    "ml_exclusions",
    "labels",
    "model_metrics",
    "ab_test_assignments",
    "ab_test_metrics",
)


def run_demo_data(db_url: str, root: Path, params: dict[str, Any] | None = None) -> Path:
    """Run ``demo_data`` into ``db_url`` in a copy of the project under ``root``.

    ``params`` override ``demo_data`` parameters (default: the tiny world).

    Returns:
        The copy: its catalog places the audio and the ground truth under its ``data/``.
    """
    project = copy_project(root / "project")
    run_pipelines(project, ["demo_data"], {"demo_data": {"size": "tiny", **(params or {})}}, db_url)
    return project


def read_tables(db_url: str) -> dict[str, pd.DataFrame]:
    engine = create_engine(db_url)
    try:
        return {table: pd.read_sql_table(table, engine) for table in TABLES}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_demo_data_pipeline_writes_the_world(db_url: str, tmp_path: Path) -> None:
    """The tiny world through the catalog: tables, audio where ``jobs`` says, ground truth."""
    project = run_demo_data(db_url, tmp_path, {"n_workers": 1})
    raw = project / "data" / "01_raw"
    tables = read_tables(db_url)
    truth = json.loads((raw / "ground_truth.json").read_text())
    summary = truth["summary"]
    assert len(tables["jobs"]) == summary["n_jobs"] == 40
    assert len(tables["labels"]) == 3 * summary["n_jobs"]
    never_asked = summary["users_per_consent_state"]["never_asked"]
    assert len(tables["ml_consent"]) == summary["n_users"] - never_asked
    assert len(tables["ml_exclusions"]) == sum(summary["exclusions_per_reason_and_level"].values())
    assert set(tables["ml_exclusions"]["reason"]) == {
        "withdrawal",
        "quality",
        "legal_hold",
        "manual",
    }
    for experiment, facts in truth["experiments"].items():
        assigned = tables["ab_test_assignments"]["experiment_id"] == experiment
        assert assigned.sum() == sum(facts["users_per_variant"].values())
    assert tables["model_metrics"]["job_id"].isin(tables["jobs"]["job_id"]).all()
    assert tables["labels"]["job_id"].isin(tables["jobs"]["job_id"]).all()

    jobs_truth = pd.read_parquet(raw / "ground_truth_jobs.parquet").set_index("job_id")
    audio = raw / "audio"
    for job in tables["jobs"].itertuples():
        assert load_audio(audio / job.vocal_path)[0].shape[0] == 1
        trimmed = isinstance(job.trimmed_inst_path, str)
        reference = job.trimmed_inst_path if trimmed else job.inst_path
        assert load_audio(audio / reference)[1] == 44100
        assert (audio / job.mix_path).is_file()
        assert trimmed == (jobs_truth.loc[job.job_id, "trimmed_s"] > 0)
    users = pd.read_parquet(raw / "ground_truth_users.parquet")
    assert set(tables["jobs"]["user_id"]) <= set(users["user_id"])
