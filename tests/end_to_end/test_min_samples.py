"""The ML_MIN_SAMPLES gate through `kedro run --pipelines=training` on a small hand-made world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from mixai_inference import FEATURE_SCHEMA_VERSION
from mixai_inference.tasks import ALIGN_CONF, MASTER_PARAM_RANGES, MASTER_REG, PRESET_CLS, PRESETS
from mixai_ml.db import apply_migrations
from mixai_ml.db.schema import FEATURE_COLUMNS
from project_copy import copy_project, run_pipelines
from tiny_world import FAST_MODEL, TINY

N_USERS, JOBS_PER_USER, ALIGN_USERS = 30, 3, 8
# fast models and the tiny world's split; the gate itself comes from the configuration
PARAMS = {
    "training": {"split": TINY["training"]["split"]},
    **{task: FAST_MODEL for task in (MASTER_REG, PRESET_CLS, ALIGN_CONF)},
}
T0 = pd.Timestamp("2026-06-01", tz="UTC")


def write_world(url: str) -> dict[str, int]:
    """90 jobs of 30 consenting users, all labelled for two tasks, 24 for ``align_conf``.

    Returns:
        The number of trainable samples per task.
    """
    rng = np.random.default_rng(7)
    jobs = pd.DataFrame(
        {
            "job_id": [f"job-{i:03d}" for i in range(N_USERS * JOBS_PER_USER)],
            "user_id": [f"user-{i // JOBS_PER_USER:02d}" for i in range(N_USERS * JOBS_PER_USER)],
        }
    )
    jobs = jobs.assign(created_at=T0, vocal_path="v.wav", inst_path="i.wav", mix_path="m.wav")
    consent = pd.DataFrame(
        {"user_id": jobs["user_id"].unique(), "consented": True, "updated_at": T0}
    )
    features = pd.DataFrame(
        rng.normal(size=(len(jobs), len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS)
    )
    features.insert(0, "job_id", jobs["job_id"])
    features.insert(1, "schema_version", FEATURE_SCHEMA_VERSION)
    features.insert(2, "extracted_at", T0)
    master = [
        json.dumps(
            {name: rng.uniform(low, high) for name, (low, high) in MASTER_PARAM_RANGES.items()}
        )
        for _ in range(len(jobs))
    ]
    presets = [json.dumps({"preset": PRESETS[i % len(PRESETS)]}) for i in range(len(jobs))]
    aligned_jobs = jobs[jobs["user_id"] < f"user-{ALIGN_USERS:02d}"]["job_id"]
    aligned = [
        json.dumps({"offset_ms": 0.0, "aligned_ok": bool(i % 2)}) for i in range(len(aligned_jobs))
    ]
    labels = pd.concat(
        [
            pd.DataFrame({"job_id": jobs["job_id"], "task": MASTER_REG, "label": master}),
            pd.DataFrame({"job_id": jobs["job_id"], "task": PRESET_CLS, "label": presets}),
            pd.DataFrame({"job_id": aligned_jobs, "task": ALIGN_CONF, "label": aligned}),
        ]
    ).assign(created_at=T0)
    engine = create_engine(url)
    try:
        apply_migrations(engine)
        for name, frame in [
            ("jobs", jobs),
            ("ml_consent", consent),
            ("features_store", features),
            ("labels", labels),
        ]:
            frame.to_sql(name, engine, if_exists="append", index=False)
    finally:
        engine.dispose()
    return {MASTER_REG: len(jobs), PRESET_CLS: len(jobs), ALIGN_CONF: len(aligned_jobs)}


def training_jobs(url: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        return pd.read_sql_table("training_jobs", engine).set_index("task")
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_task_below_ml_min_samples_is_skipped_and_the_others_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_project(tmp_path)
    url = f"sqlite:///{project / 'data' / 'mixai.db'}"
    samples = write_world(url)

    # the parameter's default (1000): every task is skipped, each with its count
    monkeypatch.delenv("ML_MIN_SAMPLES", raising=False)
    run_pipelines(project, ["training"], PARAMS, db_url=url)
    default = training_jobs(url)
    assert (default["status"] == "skipped").all()
    for task, n_samples in samples.items():
        assert default.loc[task, "n_samples"] == n_samples
        assert default.loc[task, "reason"] == (
            f"only {n_samples} trainable samples after consent and exclusions, "
            "below ML_MIN_SAMPLES=1000"
        )
        assert pd.notna(default.loc[task, "finished_at"])

    # the environment variable overrides it: align_conf (24 samples) stays below 50
    monkeypatch.setenv("ML_MIN_SAMPLES", "50")
    run_pipelines(project, ["training"], PARAMS, db_url=url)
    latest = training_jobs(url)
    latest = latest[~latest["training_job_id"].isin(default["training_job_id"])]
    assert sorted(latest.index) == sorted(samples)
    assert latest.loc[ALIGN_CONF, "status"] == "skipped"
    assert latest.loc[ALIGN_CONF, "n_samples"] == samples[ALIGN_CONF]
    assert latest.loc[ALIGN_CONF, "reason"] == (
        f"only {samples[ALIGN_CONF]} trainable samples after consent and exclusions, "
        "below ML_MIN_SAMPLES=50"
    )
    assert pd.isna(latest.loc[ALIGN_CONF, "model_version"])
    for task in (MASTER_REG, PRESET_CLS):
        assert latest.loc[task, "status"] == "succeeded"
        assert latest.loc[task, "n_samples"] == samples[task]
        assert pd.isna(latest.loc[task, "reason"])
        assert latest.loc[task, "model_version"]
