"""The features pipeline's extraction: consent, incrementality, failures, Dask = local."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixai_inference import ALIGNMENT_FEATURE_NAMES, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_ml.datasets import AudioDataset
from mixai_ml.features import extraction
from mixai_ml.pipelines.features.nodes import extract_new_jobs

SR = 22_050
T0 = pd.Timestamp("2026-06-01", tz="UTC")


ONSETS = np.cumsum(np.random.default_rng(99).uniform(0.2, 0.6, size=20))
"""One irregular onset schedule shared by every stem (a regular one aligns at any period)."""


def clicks(offset_s: float, seconds: float, seed: int) -> np.ndarray:
    """Decaying noise bursts (timbre from ``seed``) at :data:`ONSETS` shifted by ``offset_s``."""
    rng = np.random.default_rng(seed)
    signal = np.zeros(int(seconds * SR), dtype=np.float32)
    burst = (rng.normal(size=2000) * np.exp(-np.arange(2000) / 300)).astype(np.float32)
    for start in ONSETS[ONSETS + offset_s < seconds - 0.1] + offset_s:
        index = int(start * SR)
        signal[index : index + 2000] += burst[: len(signal) - index]
    return 0.3 * signal


World = tuple[pd.DataFrame, pd.DataFrame, dict[str, extraction.AudioLoader]]


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Four jobs: j0, j1 fine; j2 has a corrupt mix; j3 belongs to a user without consent."""
    rows = []
    for index in range(4):
        job = f"j{index}"
        paths = {role: f"jobs/{job}/{role}.flac" for role in ("vocal", "inst", "mix")}
        instrumental = clicks(0.0, 5.0, seed=index)
        vocal = clicks(0.1, 5.0, seed=10 + index)
        AudioDataset(filepath=str(tmp_path / paths["inst"])).save(
            (np.stack([instrumental] * 2), SR)
        )
        AudioDataset(filepath=str(tmp_path / paths["vocal"])).save((vocal, SR))
        AudioDataset(filepath=str(tmp_path / paths["mix"])).save(
            (np.stack([instrumental + vocal] * 2), SR)
        )
        rows.append(
            {
                "job_id": job,
                "user_id": "nobody" if index == 3 else "u1",
                "created_at": T0,
                "vocal_path": paths["vocal"],
                "inst_path": paths["inst"],
                "trimmed_inst_path": None,
                "mix_path": paths["mix"],
            }
        )
    (tmp_path / "jobs/j2/mix.flac").write_bytes(b"fLaC" + b"\0" * 100)
    jobs = pd.DataFrame(rows)
    consent = pd.DataFrame(
        {"user_id": ["u1"], "consented": [True], "updated_at": T0, "withdrawn_at": pd.NaT}
    )
    files = {
        str(path.relative_to(tmp_path)): AudioDataset(filepath=str(path)).load
        for path in tmp_path.rglob("*.flac")
    }
    return jobs, consent, files


def no_features() -> pd.DataFrame:
    return pd.DataFrame({"job_id": [], "schema_version": []})


def test_extracts_consenting_jobs_and_records_failures_without_stopping(world: World) -> None:
    jobs, consent, files = world
    features, failures, summary = extract_new_jobs(
        jobs, consent, no_features(), files, {"n_workers": 1}
    )

    assert features["job_id"].tolist() == ["j0", "j1"]
    assert (features["schema_version"] == FEATURE_SCHEMA_VERSION).all()
    values = features[[*FEATURE_NAMES, *ALIGNMENT_FEATURE_NAMES]].to_numpy()
    assert np.isfinite(values).all()
    # the vocal clicks start 100 ms after the instrumental's: delay the vocal by -100 ms
    assert features["offset_ms"].to_numpy() == pytest.approx([-100, -100], abs=20)
    assert failures[["job_id", "stage"]].values.tolist() == [["j2", "track"]]
    assert failures["error_class"].iloc[0].endswith("Error")
    assert summary["extracted"] == 2
    assert summary["failed_jobs"] == 1


def test_only_jobs_without_features_of_this_schema_version_are_redone(world: World) -> None:
    jobs, consent, _ = world
    existing = pd.DataFrame(
        {"job_id": ["j0", "j1"], "schema_version": [FEATURE_SCHEMA_VERSION, "0.9"]}
    )
    todo = extraction.jobs_to_extract(jobs, consent, existing, FEATURE_SCHEMA_VERSION)
    assert todo["job_id"].tolist() == ["j1", "j2"]


def test_missing_files_are_failures_not_crashes(world: World) -> None:
    jobs, _, files = world
    del files["jobs/j1/vocal.flac"]
    ready, missing = extraction.job_audio(jobs.iloc[:2], files)
    assert [job.job_id for job in ready] == ["j0"]
    assert missing[0].failures[0].error_class == "AudioFileNotFoundError"
    assert "jobs/j1/vocal.flac" in missing[0].failures[0].message


@pytest.mark.slow
def test_dask_cluster_gives_the_same_features_as_local_processes(world: World) -> None:
    from dask.distributed import LocalCluster

    jobs, _, files = world
    ready, _ = extraction.job_audio(jobs.iloc[:2], files)
    local = extraction.run_extraction(ready, n_workers=2)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    with cluster:
        distributed = extraction.run_extraction(ready, scheduler=cluster.scheduler_address)
    assert [r.job_id for r in distributed] == [r.job_id for r in local]
    for a, b in zip(local, distributed, strict=True):
        np.testing.assert_array_equal(a.track, b.track)
        np.testing.assert_array_equal(a.alignment, b.alignment)
