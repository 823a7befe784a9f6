"""Feature extraction of jobs, in parallel worker processes or on a Dask cluster.

The features themselves come from :mod:`mixai_inference` (the same code that
serves production). This module decides which jobs need work, runs it in
parallel, and turns results and failures into table rows. A failing file is a
row in ``feature_failures``, never a failed run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mixai_inference import (
    ALIGNMENT_FEATURE_NAMES,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    estimate_alignment,
    extract_features,
)
from mixai_inference.audio import resample
from mixai_ml.governance import consenting_users
from mixai_ml.progress import progress

logger = logging.getLogger(__name__)

AudioLoader = Callable[[], tuple[np.ndarray, int]]
"""Loads one file lazily: ``() -> (audio (channels, samples), sample rate)``."""


@dataclass(frozen=True)
class JobAudio:
    """Lazy loaders of one job's files (the instrumental is the trimmed one when present)."""

    job_id: str
    mix: AudioLoader
    vocal: AudioLoader
    instrumental: AudioLoader


class StageFailure(NamedTuple):
    """A stage of one job that failed: a ``feature_failures`` row."""

    stage: str
    """``load``, ``track`` or ``alignment``."""
    error_class: str
    message: str


@dataclass
class JobFeatures:
    """What extraction produced for one job, and what failed."""

    job_id: str
    track: np.ndarray | None = None
    alignment: np.ndarray | None = None
    failures: list[StageFailure] = field(default_factory=list)


def jobs_to_extract(
    jobs: pd.DataFrame, consent: pd.DataFrame, existing: pd.DataFrame, schema_version: str
) -> pd.DataFrame:
    """Jobs of consenting users that have no features for ``schema_version`` yet.

    Args:
        jobs: the ``jobs`` table.
        consent: the ``ml_consent`` table (features are only made from data users allow).
        existing: ``job_id`` and ``schema_version`` of the rows already in ``features_store``.
        schema_version: the extractor's ``FEATURE_SCHEMA_VERSION``.
    """
    done = set(existing.loc[existing["schema_version"] == schema_version, "job_id"].astype(str))
    allowed = jobs["user_id"].astype(str).isin(consenting_users(consent))
    todo = jobs[allowed & ~jobs["job_id"].astype(str).isin(done)]
    return todo.sort_values("job_id", kind="stable").reset_index(drop=True)


def job_audio(
    jobs: pd.DataFrame, files: Mapping[str, AudioLoader]
) -> tuple[list[JobAudio], list[JobFeatures]]:
    """Pair each job with the loaders of its files.

    Args:
        jobs: rows of ``jobs`` (paths relative to the audio root).
        files: relative path -> loader, e.g. a ``PartitionedDataset`` of audio files.

    Returns:
        The jobs whose files all exist, and a failure record for each job with a
        missing file.
    """
    ready, missing = [], []
    for row in jobs.itertuples(index=False):
        instrumental = (
            row.trimmed_inst_path if isinstance(row.trimmed_inst_path, str) else row.inst_path
        )
        paths = {"mix": row.mix_path, "vocal": row.vocal_path, "instrumental": instrumental}
        absent = [f"{role} {path}" for role, path in paths.items() if path not in files]
        if absent:
            message = f"missing audio file(s): {', '.join(absent)}"
            missing.append(
                JobFeatures(
                    str(row.job_id),
                    failures=[StageFailure("load", "AudioFileNotFoundError", message)],
                )
            )
            continue
        ready.append(
            JobAudio(
                str(row.job_id), *(files[paths[role]] for role in ("mix", "vocal", "instrumental"))
            )
        )
    return ready, missing


def extract_job(job: JobAudio) -> JobFeatures:
    """Track features of the mix and alignment features of (vocal, instrumental).

    Each stage fails alone: an unreadable vocal still leaves the mix's features.
    """
    result = JobFeatures(job.job_id)
    try:
        audio, sr = job.mix()
        result.track = extract_features(audio, sr)
    except Exception as error:
        result.failures.append(StageFailure("track", type(error).__name__, str(error)))
    try:
        vocal, vocal_sr = job.vocal()
        instrumental, inst_sr = job.instrumental()
        if inst_sr != vocal_sr:
            instrumental = resample(instrumental, inst_sr, vocal_sr)
        result.alignment = estimate_alignment(vocal, instrumental, vocal_sr).features
    except Exception as error:
        result.failures.append(StageFailure("alignment", type(error).__name__, str(error)))
    return result


def _single_threaded_blas() -> None:
    # Each worker does many small matrix products: threaded BLAS in every worker
    # oversubscribes the cores and runs several times slower.
    threadpool_limits(limits=1)


def _local(jobs: list[JobAudio], n_workers: int) -> Iterator[JobFeatures]:
    if n_workers <= 1:
        yield from map(extract_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=n_workers, initializer=_single_threaded_blas) as pool:
        futures = [pool.submit(extract_job, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _dask(jobs: list[JobAudio], address: str) -> Iterator[JobFeatures]:
    from dask.distributed import Client
    from dask.distributed import as_completed as dask_completed

    with Client(address) as client:
        client.run(_single_threaded_blas)
        futures = client.map(extract_job, jobs, pure=False)
        for future in dask_completed(futures):
            yield future.result()


def run_extraction(
    jobs: list[JobAudio], *, n_workers: int | None = None, scheduler: str | None = None
) -> list[JobFeatures]:
    """Extract every job, on local worker processes or a Dask cluster.

    Args:
        jobs: the work.
        n_workers: local worker processes (default: the machine's cores).
        scheduler: address of a Dask distributed scheduler (e.g.
            ``tcp://10.0.0.5:8786``); when set, the work runs there instead.

    Returns:
        One result per job, sorted by job id (the order of completion does not matter).
    """
    workers = n_workers or os.cpu_count() or 1
    stream: Iterable[JobFeatures] = _dask(jobs, scheduler) if scheduler else _local(jobs, workers)
    results = list(progress(stream, total=len(jobs), desc="extracting features", unit="job"))
    return sorted(results, key=lambda result: result.job_id)


def result_tables(
    results: list[JobFeatures], extracted_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``features_store`` rows (jobs with track features) and ``feature_failures`` rows."""
    stamp = pd.Timestamp(extracted_at)
    with_track = [result for result in results if result.track is not None]
    track = np.array([result.track for result in with_track], dtype=np.float64).reshape(
        -1, len(FEATURE_NAMES)
    )
    alignment = np.full((len(with_track), len(ALIGNMENT_FEATURE_NAMES)), np.nan)
    for row, result in enumerate(with_track):
        if result.alignment is not None:
            alignment[row] = result.alignment
    features = pd.DataFrame(
        np.hstack([track, alignment]), columns=[*FEATURE_NAMES, *ALIGNMENT_FEATURE_NAMES]
    )
    features.insert(0, "job_id", [result.job_id for result in with_track])
    features.insert(1, "schema_version", FEATURE_SCHEMA_VERSION)
    features.insert(2, "extracted_at", stamp)
    failures = pd.DataFrame(
        [
            {
                "job_id": result.job_id,
                "schema_version": FEATURE_SCHEMA_VERSION,
                "failed_at": stamp,
                "stage": stage,
                "error_class": error_class,
                "message": message[:2000],
            }
            for result in results
            for stage, error_class, message in result.failures
        ],
        columns=["job_id", "schema_version", "failed_at", "stage", "error_class", "message"],
    )
    return features, failures
