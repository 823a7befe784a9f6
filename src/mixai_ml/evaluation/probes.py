"""Features of held-out jobs' audio under known shifts (:mod:`mixai_ml.evaluation.shifts`).

The same extraction as the ``features`` pipeline (worker processes, a failure recorded and
never fatal), on loaders that shift the audio as they load it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mixai_inference import ALIGNMENT_FEATURE_NAMES, FEATURE_NAMES
from mixai_ml.evaluation.shifts import ShiftedAudio, check_shifts
from mixai_ml.features import extraction

logger = logging.getLogger(__name__)

PROBE_COLUMNS = ("job_id", "shift", *FEATURE_NAMES, *ALIGNMENT_FEATURE_NAMES)
_SEPARATOR = "@"


def held_out_jobs(model_inputs: Sequence[pd.DataFrame], max_jobs: int) -> list[str]:
    """The first ``max_jobs`` (by id) of the tasks' test jobs."""
    jobs = set()
    for frame in model_inputs:
        jobs |= set(frame.loc[frame["split"] == "test", "job_id"].astype(str))
    return sorted(jobs)[:max_jobs]


def probe_features(
    jobs: pd.DataFrame,
    files: Mapping[str, extraction.AudioLoader],
    job_ids: Sequence[str],
    shifts: Mapping[str, Mapping[str, Any]],
    n_workers: int | None = None,
) -> pd.DataFrame:
    """Mix and alignment features of each job under each audio shift.

    Args:
        jobs: The ``jobs`` table.
        files: Relative path → loader (the ``job_audio_files`` partitions).
        job_ids: The jobs to shift.
        shifts: Name → shift; ``genre`` shifts change no audio and are skipped.
        n_workers: Worker processes (default: the machine's cores).

    Returns:
        :data:`PROBE_COLUMNS`, a row per job and shift whose mix could be read (alignment
        features NaN where the alignment failed).
    """
    check_shifts(shifts)
    audio_shifts = {name: shift for name, shift in shifts.items() if shift["kind"] != "genre"}
    chosen = jobs[jobs["job_id"].astype(str).isin(set(job_ids))]
    ready, missing = extraction.job_audio(chosen, files)
    if missing:
        logger.warning("shift probes: %d held-out jobs lack audio files", len(missing))
    work = []
    for job in ready:
        for name, shift in audio_shifts.items():
            seed = zlib.crc32(f"{job.job_id}:{name}".encode())
            work.append(
                extraction.JobAudio(
                    f"{job.job_id}{_SEPARATOR}{name}",
                    ShiftedAudio(job.mix, shift, seed),
                    ShiftedAudio(job.vocal, shift, seed + 1),
                    ShiftedAudio(job.instrumental, shift, seed + 2),
                )
            )
    results = extraction.run_extraction(work, n_workers=n_workers)
    features, failures = extraction.result_tables(results, datetime.now(UTC))
    if len(failures):
        logger.warning(
            "shift probes: %d stages failed, e.g. %s", len(failures), failures.iloc[0].to_dict()
        )
    if len(features):  # no audio, no shift: an empty table of the same columns
        keys = features["job_id"].astype(str).str.split(_SEPARATOR, n=1, expand=True)
        features = features.assign(job_id=keys[0], shift=keys[1])
    return features.reindex(columns=list(PROBE_COLUMNS)).reset_index(drop=True)
