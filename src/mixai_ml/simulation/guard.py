"""The demo world's out-of-distribution guard in serving: each answer's score and sketch.

Every answer whose input could be read gets ``ood_score``, ``ood`` and ``input_sketch`` as
the service writes them (:mod:`mixai_inference.ood`): one decile digit per model input and,
for the model's own answers, per output. Normally each digit is equally likely (the inputs
look like the training data) and the score is log-normal with about 1 % above 1 (the
calibrated false-alarm rate).

The drift episode: from ``drift.days`` before ``world_end``, a client release low-passes a
``drift.share`` of the uploads. Those answers' inputs named by ``drift.inputs`` (name
prefixes) fall to their two lowest deciles, the outputs named by ``drift.outputs`` rise to
their two highest (the model brightens the dull mixes), and their scores are drawn around
``ood_score_median.drifted``. Tasks whose inputs have none of those features do not drift.
Draws come from their own random stream, so the rest of the world is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mixai_inference.ood import SKETCH_BINS, digit_strings, format_sketch
from mixai_inference.tasks import task_spec
from mixai_ml.simulation.config import ONLINE, stream

_GUARD_STREAM = 1


def _matching(names: tuple[str, ...], prefixes: list[str]) -> np.ndarray:
    return np.array([name.startswith(tuple(prefixes)) for name in names], dtype=bool)


def guard_columns(
    rows: pd.DataFrame, guard: Mapping[str, Any], seed: int, world_end: pd.Timestamp
) -> pd.DataFrame:
    """``rows`` (``model_metrics``) with ``ood_score``, ``ood`` and ``input_sketch``.

    Rows without a prediction (the input could not be read) get none.
    """
    rng = stream(seed, ONLINE, _GUARD_STREAM)
    drift, median = guard["drift"], guard["ood_score_median"]
    start = world_end - pd.Timedelta(days=float(drift["days"]))
    scores = np.full(len(rows), np.nan)
    sketches = np.full(len(rows), None, dtype=object)
    for task, group in rows.groupby("task", sort=True):
        spec = task_spec(str(task))
        inputs, outputs = spec.input_names(), spec.outputs
        index = group.index[group["prediction"].notna()]
        chosen = rows.loc[index]
        drifted_inputs = _matching(inputs, drift["inputs"])
        shifted = (
            (chosen["recorded_at"] >= start).to_numpy()
            & (rng.random(len(chosen)) < float(drift["share"]))
            & drifted_inputs.any()
        )
        input_digits = rng.integers(0, SKETCH_BINS, (len(chosen), len(inputs)))
        low = rng.integers(0, 2, input_digits.shape)
        input_digits[np.ix_(shifted, drifted_inputs)] = low[np.ix_(shifted, drifted_inputs)]
        output_digits = rng.integers(0, SKETCH_BINS, (len(chosen), len(outputs)))
        high = rng.integers(SKETCH_BINS - 2, SKETCH_BINS, output_digits.shape)
        raised = _matching(outputs, drift["outputs"])
        output_digits[np.ix_(shifted, raised)] = high[np.ix_(shifted, raised)]
        centre = np.where(shifted, float(median["drifted"]), float(median["typical"]))
        score = centre * np.exp(rng.normal(0.0, float(guard["log_sd"]), len(chosen)))
        answered = (chosen["source"] == "ml").to_numpy()
        scores[rows.index.get_indexer(index)] = np.round(score, 4)
        sketches[rows.index.get_indexer(index)] = [
            format_sketch(given, served if ml else None)
            for given, served, ml in zip(
                digit_strings(input_digits), digit_strings(output_digits), answered, strict=True
            )
        ]
    ood = pd.array([None if np.isnan(s) else bool(s > 1.0) for s in scores], dtype="boolean")
    return rows.assign(ood_score=scores, ood=ood, input_sketch=sketches)
