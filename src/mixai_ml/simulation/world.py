"""The synthetic MIXAI world: users, consent, jobs with their audio, labels and ground truth.

The world is a pure function of its parameters (:mod:`~mixai_ml.simulation.config`): the
same parameters give identical rows and identical audio bytes, whatever the number of
worker processes. Its parts: :mod:`~mixai_ml.simulation.population` (users, consent,
exclusions), :mod:`~mixai_ml.simulation.jobs` (jobs and their audio),
:mod:`~mixai_ml.simulation.labels` and :mod:`~mixai_ml.simulation.truth`.

Hidden user model (recorded in the ground truth):

* each user has a *taste*: an offset per mastering parameter, a favourite preset and a
  few favourite styles their songs are in;
* a job's mix deviates from its style's target (the median of the style's un-deviated
  reference mixes) in tone (power below 150 Hz, in 1.5-4 kHz and above 6 kHz), crest
  factor and side/mid balance; the user's final mastering parameters are the style's
  preset, minus a share of the tonal deviation, with compression and width following the
  crest and side deviations, plus their taste and per-job noise, clipped to the contract
  ranges (docs/data_contracts.md §3):

  ``eq_band = preset_band - tone_correction * tone_deviation_band + taste + noise``
  ``comp_threshold_db = preset + threshold_per_crest_db * crest_deviation + taste + noise``
  ``comp_ratio = preset + ratio_per_crest_db * crest_deviation + taste + noise``
  ``stereo_width = preset + width_per_side_db * side_deviation + taste + noise``
  ``target_lufs``, ``limiter_ceiling_dbtp`` = preset + taste + noise;

* the preset they pick is their style's with probability ``preset_agreement``, otherwise
  their favourite (share ``favourite_share``) or a neighbouring style;
* the alignment label is the true vocal offset against the alignment reference and
  whether :func:`mixai_inference.estimate_alignment` on the uploaded files lands within
  20 ms of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixai_ml.datasets.audio import AudioFolder
from mixai_ml.simulation.config import WorldConfig
from mixai_ml.simulation.jobs import JOBS_FOLDER, job_file, plan_jobs, render_jobs, task_facts
from mixai_ml.simulation.labels import label_jobs, labels_table
from mixai_ml.simulation.population import consent_tables, make_users, quality_exclusions


@dataclass(frozen=True)
class World:
    """The application tables of the world and the hidden facts behind them.

    Attributes:
        config: the parameters.
        users: :func:`make_users` (hidden).
        truth: one row per job: its plan (style, take, mix, defect), what rendering
            measured and the hidden user model's labels (see :func:`label_jobs`).
        jobs, consent, exclusions, labels: rows of the ``jobs``, ``ml_consent``,
            ``ml_exclusions`` and ``labels`` tables.
    """

    config: WorldConfig
    users: pd.DataFrame
    truth: pd.DataFrame
    jobs: pd.DataFrame
    consent: pd.DataFrame
    exclusions: pd.DataFrame
    labels: pd.DataFrame


def build_world(config: WorldConfig, audio: AudioFolder) -> World:
    """Users, jobs with their audio files in ``audio``, labels, consent and exclusions.

    The folder's ``jobs/`` is replaced whole: a smaller world leaves no stale job behind.
    """
    users = make_users(config)
    jobs, tasks = plan_jobs(config, users, audio)
    audio.remove(JOBS_FOLDER)
    rendered = render_jobs(tasks, config.n_workers)
    truth = pd.DataFrame([task_facts(task) for task in tasks]).merge(rendered, on="job_id")
    truth.insert(1, "user_id", jobs["user_id"].to_numpy())
    truth = label_jobs(config, users, truth)
    jobs = jobs.assign(
        trimmed_inst_path=np.where(
            truth["trimmed_s"] > 0,
            jobs["job_id"].map(lambda job: job_file(job, "inst_trimmed")),
            None,
        )
    )
    consent, exclusions = consent_tables(config, users, jobs)
    exclusions = pd.concat(
        [exclusions, quality_exclusions(config, jobs, truth.set_index("job_id")["defect"])],
        ignore_index=True,
    )
    exclusions = exclusions.sort_values(["created_at", "reason"], kind="stable").reset_index(
        drop=True
    )
    exclusions.insert(
        0, "exclusion_id", [f"X{number:05d}" for number in range(1, len(exclusions) + 1)]
    )
    return World(
        config=config,
        users=users,
        truth=truth,
        jobs=jobs,
        consent=consent,
        exclusions=exclusions,
        labels=labels_table(jobs, truth, config),
    )
