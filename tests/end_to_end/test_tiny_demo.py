"""Every pipeline on the tiny world: what `make demo` promises, in miniature."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference.bundle import read_manifest
from mixai_inference.flags import Flags
from mixai_inference.predictor import Predictor
from mixai_inference.tasks import task_names
from mixai_ml.evaluation.report import results_table
from project_copy import run_pipelines
from tiny_world import TINY

TINY_SHIFTS = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "conf/base/parameters_evaluation.yml").read_text()
)["evaluation"]["ood"]["shifts"]

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


def test_the_guard_ships_with_each_model_and_is_evaluated(tiny_project: Path) -> None:
    bundle = tiny_project / "data/06_models/bundle"
    manifest = read_manifest(bundle)
    metrics = json.loads((tiny_project / "data/08_reporting/evaluation_metrics.json").read_text())
    shifts = set(TINY_SHIFTS)
    for task in task_names():
        entry = manifest.tasks[task]
        assert entry.ood_policy == "flag"
        active = entry.active
        assert active is None or active.reference is not None
        ood = metrics[task]["ood"]
        assert ood["status"] == "evaluated"
        assert 0.0 <= ood["false_alarm_rate"] <= 1.0
        assert set(ood["shifts"]) == shifts
        assert set(ood["errors"]) == {"in_distribution", "out_of_distribution"}
    report = (tiny_project / "data/08_reporting/evaluation_report.md").read_text()
    assert "**Out-of-distribution guard**" in report
    assert (tiny_project / "data/08_reporting/master_reg_ood_guard.png").is_file()

    features = table(tiny_project, "features_store")
    row = features[list(FEATURE_NAMES)].to_numpy(dtype="float32")[0]
    predictor = Predictor.from_bundle(bundle, flags=Flags(enable_cpu_ml=True))
    near = predictor.predict(row).to_dict()
    far = predictor.predict(row * 50.0).to_dict()
    for task in task_names("mix"):
        if near[task]["source"] == "ml":
            assert isinstance(near[task]["ood_score"], float)
            assert far[task]["ood"] is True
