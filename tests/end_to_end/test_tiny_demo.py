"""Every pipeline on the tiny world: what `make demo` promises, in miniature."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.bundle import read_manifest
from mixai_inference.tasks import task_names
from mixai_ml.evaluation.report import results_table
from project_copy import run_pipelines
from tiny_world import TINY

pytestmark = pytest.mark.slow  # the tiny world through every pipeline: about a minute


def table(project: Path, name: str) -> pd.DataFrame:
    engine = create_engine(f"sqlite:///{project / 'data' / 'mixai.db'}")
    try:
        return pd.read_sql_table(name, engine)
    finally:
        engine.dispose()


def test_features_cover_exactly_the_consenting_users_jobs(tiny_project: Path) -> None:
    features = table(tiny_project, "features_store")
    jobs = table(tiny_project, "jobs")
    consent = table(tiny_project, "ml_consent")
    allowed = set(
        consent.loc[consent["consented"].astype(bool) & consent["withdrawn_at"].isna(), "user_id"]
    )
    expected = set(jobs.loc[jobs["user_id"].isin(allowed), "job_id"])
    failed = set(table(tiny_project, "feature_failures").query("stage == 'track'")["job_id"])
    assert set(features["job_id"]) == expected - failed
    assert (features["schema_version"] == FEATURE_SCHEMA_VERSION).all()
    assert (tiny_project / "data/04_feature/features.parquet").is_file()


def test_each_task_trains_evaluates_and_ships(tiny_project: Path) -> None:
    runs = table(tiny_project, "training_jobs")
    assert sorted(runs["task"]) == sorted(task_names())
    assert (runs["status"] == "succeeded").all()
    for governance in runs["governance"]:
        counts = json.loads(governance)
        assert counts["n_samples"] >= TINY["training"]["min_samples"]
        assert counts["no_consent"] + counts["withdrawn"] > 0
    metrics = json.loads((tiny_project / "data/08_reporting/evaluation_metrics.json").read_text())
    assert {"mae_norm"} <= set(metrics["master_reg"]["model"]) & set(metrics["master_reg"]["rules"])
    assert "macro_f1" in metrics["preset_cls"]["sklearn"]
    assert {"roc_auc", "ece"} <= set(metrics["align_conf"]["model"])
    report = (tiny_project / "data/08_reporting/evaluation_report.md").read_text()
    assert "## master_reg" in report
    assert "Decision:" in report
    for figure in ("master_reg_parameter_errors.png", "align_conf_learning_curve.png"):
        assert f"![{figure}]({figure})" in report
        assert (tiny_project / "data/08_reporting" / figure).is_file()  # beside the report
    readme_table = results_table(metrics)  # what make demo writes into the README
    assert f"| **{metrics['preset_cls']['model']['macro_f1']:.3f}** |" in readme_table
    manifest = read_manifest(tiny_project / "data/06_models/bundle")
    registry = table(tiny_project, "model_registry")
    assert set(registry["task"]) == set(task_names())
    for task in task_names():
        active = manifest.tasks[task].active_version
        assert active is None or active in set(registry["version"])


def test_a_single_task_retrains_alone(tiny_project: Path) -> None:
    before = table(tiny_project, "training_jobs")
    run_pipelines(tiny_project, ["training"], TINY, namespaces=["master_reg"])
    after = table(tiny_project, "training_jobs")
    new = after[~after["training_job_id"].isin(before["training_job_id"])]
    assert new["task"].tolist() == ["master_reg"]
    assert new["status"].tolist() == ["succeeded"]
    # earlier runs keep their own record
    old = after[after["training_job_id"].isin(before["training_job_id"])]
    columns = ["training_job_id", "task", "status", "model_version", "governance"]
    pd.testing.assert_frame_equal(
        old[columns].sort_values("training_job_id").reset_index(drop=True),
        before[columns].sort_values("training_job_id").reset_index(drop=True),
    )
    assert new["model_version"].iloc[0] not in set(before["model_version"])


def test_the_purge_ran_and_kept_legal_holds(tiny_project: Path) -> None:
    audit = table(tiny_project, "purge_audit")
    labels = table(tiny_project, "labels")
    consent = table(tiny_project, "ml_consent")
    exclusions = table(tiny_project, "ml_exclusions")
    jobs = table(tiny_project, "jobs")
    withdrawn = set(
        consent.loc[~consent["consented"].astype(bool) | consent["withdrawn_at"].notna(), "user_id"]
    )
    held_users = set(
        exclusions.loc[
            (exclusions["reason"] == "legal_hold") & exclusions["job_id"].isna(), "user_id"
        ]
    )
    held_jobs = set(exclusions.loc[exclusions["reason"] == "legal_hold", "job_id"].dropna())
    remaining = labels.merge(jobs[["job_id", "user_id"]], on="job_id")
    leftover = remaining[remaining["user_id"].isin(withdrawn)]
    assert not leftover.empty  # the held ones stay
    assert (leftover["user_id"].isin(held_users) | leftover["job_id"].isin(held_jobs)).all()
    assert set(audit["user_id"]) <= withdrawn - held_users
    assert (audit["rows_deleted"] > 0).all()
