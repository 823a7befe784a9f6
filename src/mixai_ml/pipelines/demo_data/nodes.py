"""Nodes of ``demo_data``: thin wrappers around :mod:`mixai_ml.simulation`."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from mixai_ml.datasets.audio import AudioFolder
from mixai_ml.simulation import online
from mixai_ml.simulation.config import WorldConfig
from mixai_ml.simulation.oracle import oracle_table
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


def run_time_control(params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``ml_feature_flags`` and ``ab_experiments`` rows at the world's end: the past
    experiments ``stopped``, the running ones ``running``."""
    end = pd.Timestamp(params["world_end"]).tz_convert("UTC")
    flags = pd.DataFrame(
        [
            {"flag": flag, "enabled": bool(on), "updated_at": end, "updated_by": "demo_data"}
            for flag, on in params["feature_flags"].items()
        ]
    )

    def row(experiment: dict[str, Any], status: str, start: Any, stop: Any) -> dict[str, Any]:
        return {
            "experiment_id": experiment["experiment_id"],
            "task": experiment["task"],
            "variants": json.dumps(experiment["variants"], sort_keys=True),
            "weights": json.dumps(experiment["weights"], sort_keys=True),
            "coverage": float(experiment.get("coverage", 1.0)),
            "status": status,
            "started_at": start,
            "stopped_at": stop,
        }

    days = pd.Timedelta(days=1)
    experiments = [
        row(e, "stopped", end - e["days"][0] * days, end - e["days"][1] * days)
        for e in params["experiments"]
    ] + [row(e, "running", end, pd.NaT) for e in params["running_experiments"]]
    return flags, pd.DataFrame(experiments)


def world_truth(
    world: World, experiments: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ground truth: global hidden parameters, per-user and per-job facts, and the
    oracle's answers."""
    return ground_truth(world, experiments), world.users, world.truth, oracle_table(world)
