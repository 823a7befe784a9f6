"""Nodes of ``demo_data``: thin wrappers around :mod:`mixai_ml.simulation`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from mixai_ml.datasets.audio import AudioFolder
from mixai_ml.simulation import online
from mixai_ml.simulation.config import WorldConfig
from mixai_ml.simulation.truth import ground_truth, summary
from mixai_ml.simulation.world import World, build_world

logger = logging.getLogger(__name__)


def simulate_world(params: dict[str, Any], demo_job_audio: AudioFolder) -> World:
    """Build the world; its audio files are written into ``demo_job_audio``."""
    config = WorldConfig.from_params(params)
    world = build_world(config, demo_job_audio)
    facts = summary(world)
    logger.info(
        "demo world (%s, seed %d): %d jobs of %d users, %d trainable; aligner failure rate %.1f %%",
        config.size,
        config.seed,
        facts["n_jobs"],
        facts["n_users"],
        facts["trainable_jobs"],
        100.0 * facts["aligner_failure_rate"],
    )
    return world


def application_tables(
    world: World,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``jobs``, ``ml_consent``, ``ml_exclusions`` and ``labels`` rows."""
    return world.jobs, world.consent, world.exclusions, world.labels


def serving_logs(world: World) -> pd.DataFrame:
    """The ``model_metrics`` rows."""
    config = world.config
    return online.model_metrics(
        config.online, config.seed, config.world_end, world.jobs, world.truth
    )


def experiment_logs(
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The ``ab_test_assignments`` and ``ab_test_metrics`` rows and their true effects."""
    config = WorldConfig.from_params(params)
    return online.ab_experiments(
        config.experiments, config.ab_baseline, config.ab_users, config.seed, config.world_end
    )


def world_truth(
    world: World, experiments: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The ground truth: global hidden parameters, per-user and per-job facts."""
    return ground_truth(world, experiments), world.users, world.truth
