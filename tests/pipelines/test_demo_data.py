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


def test_the_demo_seeds_the_run_time_control_of_its_config() -> None:
    """``ml_feature_flags`` and ``ab_experiments`` as the config says: ML on, the simulated
    experiments stopped when their window closed, the running ones served by mixai-serve."""
    import yaml

    from mixai_inference.control import ControlRows, ExperimentRow, RegistryRow, resolve_control
    from mixai_ml.pipelines.demo_data.nodes import run_time_control

    conf = Path(__file__).resolve().parents[2] / "conf/base/parameters_demo_data.yml"
    params = yaml.safe_load(conf.read_text())["demo_data"]
    flags, experiments = run_time_control(params)
    assert dict(zip(flags["flag"], flags["enabled"], strict=True))["enable_cpu_ml"]
    status = dict(zip(experiments["experiment_id"], experiments["status"], strict=True))
    assert status == {
        "master_v2_vs_v1": "stopped",
        "aa_check": "stopped",
        "master-reg-candidate": "running",
        "preset-ml-vs-rules": "running",
    }
    end = pd.Timestamp(params["world_end"])
    stopped = experiments.set_index("experiment_id").loc["master_v2_vs_v1", "stopped_at"]
    assert stopped == end - pd.Timedelta(days=7)
    # the service serves the running rows once the registry has their roles
    rows = ControlRows(
        models=[
            RegistryRow("master_reg", "m1", "active", 100.0),
            RegistryRow("master_reg", "m2", "candidate", 0.0),
            RegistryRow("preset_cls", "p1", "active", 100.0),
        ],
        experiments=[
            ExperimentRow(r.experiment_id, r.task, r.variants, r.weights, r.coverage, r.status)
            for r in experiments.itertuples()
        ],
    )
    control = resolve_control(None, rows, {})
    assert list(control.experiments) == ["master-reg-candidate", "preset-ml-vs-rules"]
    assert dict(control.experiments["preset-ml-vs-rules"].variants) == {
        "control": None,
        "treatment": "p1",
    }
