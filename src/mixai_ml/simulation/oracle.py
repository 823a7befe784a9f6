"""The oracle of the demo world: what a predictor knowing the world's truth answers.

It knows each job's style and deviations from its style's target, and each user's taste and
favourite preset; it does not know the per-job noise. Its error is therefore the least any
model can reach on the same jobs (the Bayes limit the evaluation reports):

* ``master_reg``: the user model's parameters without their noise,
  ``clip(preset + response + taste)``. The noise is symmetric about zero and clipping is
  monotone, so this is the median of the label: the answer of least absolute error;
* ``preset_cls``: the true probability of each preset: the style's with probability
  ``preset_agreement``, else the user's favourite (share ``favourite_share``) or one of the
  style's two neighbours (half each);
* ``align_conf``: whether the aligner landed within 20 ms is a deterministic function of the
  uploaded audio, so the world defines no probability between 0 and 1: the oracle answers
  the outcome itself (ROC-AUC 1, ECE 0), and the limit is perfect.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mixai_inference.tasks import ALIGN_CONF, MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS, PRESETS
from mixai_ml.dsp.mastering import clip_to_ranges
from mixai_ml.simulation.styles import NEIGHBOURS
from mixai_ml.simulation.world import World

ORACLE_COLUMNS = ("job_id", "task", "outputs")


def preset_probabilities(world: World) -> np.ndarray:
    """The true probability of each preset per job, ``(n_jobs, len(PRESETS))``."""
    model = world.config.user_model
    agreement, favourite_share = float(model["preset_agreement"]), float(model["favourite_share"])
    truth = world.truth
    favourite = world.users.set_index("user_id").loc[truth["user_id"], "favourite_preset"]
    index = {name: k for k, name in enumerate(PRESETS)}
    probabilities = np.zeros((len(truth), len(PRESETS)))
    rows = np.arange(len(truth))
    probabilities[rows, truth["style"].map(index).to_numpy()] += agreement
    probabilities[rows, favourite.map(index).to_numpy()] += (1 - agreement) * favourite_share
    for which in (0, 1):
        neighbour = truth["style"].map(lambda style, w=which: index[NEIGHBOURS[style][w]])
        probabilities[rows, neighbour.to_numpy()] += (1 - agreement) * (1 - favourite_share) / 2
    return probabilities


def oracle_outputs(world: World) -> dict[str, np.ndarray]:
    """Per task, the oracle's outputs for every job (``world.truth`` order), in the model's
    output space (:attr:`TaskSpec.outputs <mixai_inference.tasks.TaskSpec.outputs>`)."""
    truth = world.truth
    taste = world.users.set_index("user_id").loc[
        truth["user_id"], [f"taste_{name}" for name in MASTER_PARAM_NAMES]
    ]
    clean = truth[[f"clean_{name}" for name in MASTER_PARAM_NAMES]].to_numpy()
    return {
        MASTER_REG: clip_to_ranges(clean + taste.to_numpy()),
        PRESET_CLS: preset_probabilities(world),
        ALIGN_CONF: truth["aligned_ok"].to_numpy(dtype=float).reshape(-1, 1),
    }


def oracle_table(world: World) -> pd.DataFrame:
    """The oracle's answers: one row per job and task, ``outputs`` a JSON list of floats."""
    rows = [
        {"job_id": job_id, "task": task, "outputs": json.dumps(np.round(values, 6).tolist())}
        for task, matrix in oracle_outputs(world).items()
        for job_id, values in zip(world.truth["job_id"], matrix, strict=True)
    ]
    return pd.DataFrame(rows, columns=list(ORACLE_COLUMNS))
