"""The demo world's ground truth: its hidden parameters and summary, for tests and notebooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.tasks import ALIGN_TOLERANCE_MS, MASTER_PARAM_NAMES
from mixai_ml.simulation.labels import style_targets
from mixai_ml.simulation.styles import NEIGHBOURS, STYLES
from mixai_ml.simulation.world import World


def trainable_jobs(world: World) -> pd.Series:
    """Whether each job (``truth`` order) may be trained on: consent granted, not excluded."""
    consenting = set(world.users.loc[world.users["consent_state"] == "granted", "user_id"])
    excluded_users = set(world.exclusions["user_id"].dropna())
    excluded_jobs = set(world.exclusions["job_id"].dropna())
    return (
        world.truth["user_id"].isin(consenting)
        & ~world.truth["user_id"].isin(excluded_users)
        & ~world.truth["job_id"].isin(excluded_jobs)
    )


def summary(world: World) -> dict[str, Any]:
    """Counts and distributions of the world (for the ground truth and the logs)."""
    truth, exclusions = world.truth, world.exclusions
    level = np.where(exclusions["job_id"].notna(), "job", "user")
    labels = {
        name: truth[f"label_{name}"].describe()[["mean", "std", "min", "max"]].round(3).to_dict()
        for name in MASTER_PARAM_NAMES
    }
    return {
        "n_users": len(world.users),
        "n_jobs": len(truth),
        "users_per_consent_state": world.users["consent_state"]
        .value_counts()
        .sort_index()
        .to_dict(),
        "exclusions_per_reason_and_level": (exclusions["reason"] + "/" + level)
        .value_counts()
        .sort_index()
        .to_dict(),
        "jobs_per_style": truth["style"].value_counts().sort_index().to_dict(),
        "defects": truth["defect"].value_counts().sort_index().to_dict(),
        "trimmed_jobs": int((truth["trimmed_s"] > 0).sum()),
        "trainable_jobs": int(trainable_jobs(world).sum()),
        "master_reg_labels": labels,
        "preset_labels": truth["preset_label"].value_counts().sort_index().to_dict(),
        "preset_agreement": float((truth["preset_label"] == truth["style"]).mean()),
        "aligner_failure_rate": float(1.0 - truth["aligned_ok"].mean()),
        "aligner_failure_rate_per_style": (1.0 - truth.groupby("style")["aligned_ok"].mean())
        .round(3)
        .to_dict(),
    }


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into JSON types, recursively."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def ground_truth(world: World, experiments: Mapping[str, Any]) -> dict[str, Any]:
    """Every hidden parameter of the world that is not per user or per job (those are in
    ``world.users`` and ``world.truth``), with the experiments' true effects."""
    return _plain(
        {
            "about": (
                "Hidden parameters of the synthetic MIXAI world (mixai_ml.simulation). Per-user "
                "taste: ground_truth_users.parquet; per-job plan, measurements and labels: "
                "ground_truth_jobs.parquet."
            ),
            "config": world.config.as_json(),
            "presets": {name: dict(style.preset) for name, style in STYLES.items()},
            "style_targets": style_targets(world.truth).round(4).to_dict(orient="index"),
            "user_model": dict(world.config.user_model),
            "neighbour_presets": {name: list(values) for name, values in NEIGHBOURS.items()},
            "align_tolerance_ms": ALIGN_TOLERANCE_MS,
            "experiments": dict(experiments),
            "summary": summary(world),
        }
    )
