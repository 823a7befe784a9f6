"""The demo world's labels: what each user finally chose, from the hidden user model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixai_inference.tasks import (
    ALIGN_CONF,
    ALIGN_TOLERANCE_MS,
    MASTER_PARAM_NAMES,
    MASTER_REG,
    PRESET_CLS,
)
from mixai_ml.dsp.mastering import clip_to_ranges
from mixai_ml.simulation.config import DESCRIPTORS, LABELS, WorldConfig, compact_json, stream
from mixai_ml.simulation.styles import NEIGHBOURS, STYLES


def style_targets(truth: pd.DataFrame) -> pd.DataFrame:
    """Per style, the median descriptors of its reference (un-deviated) mixes: its target."""
    columns = {f"reference_{name}": name for name in DESCRIPTORS}
    return truth.groupby("style")[list(columns)].median().rename(columns=columns)


def label_jobs(config: WorldConfig, users: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add the hidden user model's deviations, chosen parameters and preset to ``truth``.

    Args:
        config: the world's parameters (``user_model``).
        users: :func:`make_users` rows.
        truth: one row per job with ``job_id``, ``user_id``, ``style`` and the
            ``mix_*`` / ``reference_*`` descriptors of :func:`render_job`.

    Returns:
        ``truth`` with ``dev_<descriptor>``, ``clean_<param>`` (preset plus deviation
        response), ``noise_<param>``, ``label_<param>`` (clipped to the contract ranges),
        ``preset_label``, ``preset_source`` (``style``, ``favourite``, ``neighbour``) and
        ``aligned_ok``.
    """
    model = config.user_model
    rng = stream(config.seed, LABELS)
    targets = style_targets(truth).loc[truth["style"]].to_numpy()
    deviation = truth[[f"mix_{name}" for name in DESCRIPTORS]].to_numpy() - targets
    truth = truth.copy()
    for k, name in enumerate(DESCRIPTORS):
        truth[f"dev_{name}"] = deviation[:, k]
    low, mid, high, crest, side = deviation.T
    response = np.zeros((len(truth), len(MASTER_PARAM_NAMES)))
    p = {name: k for k, name in enumerate(MASTER_PARAM_NAMES)}
    for band, dev in (("eq_low_gain_db", low), ("eq_mid_gain_db", mid), ("eq_high_gain_db", high)):
        response[:, p[band]] = -float(model["tone_correction"]) * dev
    response[:, p["comp_threshold_db"]] = float(model["threshold_per_crest_db"]) * crest
    response[:, p["comp_ratio"]] = float(model["ratio_per_crest_db"]) * crest
    response[:, p["stereo_width"]] = float(model["width_per_side_db"]) * side
    presets = np.stack([STYLES[style].preset_vector() for style in truth["style"]])
    clean = presets + response
    taste = users.set_index("user_id").loc[
        truth["user_id"], [f"taste_{n}" for n in MASTER_PARAM_NAMES]
    ]
    noise = rng.normal(
        0.0, [float(model["noise_sd"][n]) for n in MASTER_PARAM_NAMES], size=clean.shape
    )
    labels = clip_to_ranges(clean + taste.to_numpy() + noise)
    for k, name in enumerate(MASTER_PARAM_NAMES):
        truth[f"clean_{name}"] = clean[:, k]
        truth[f"noise_{name}"] = noise[:, k]
        truth[f"label_{name}"] = labels[:, k]
    favourite = users.set_index("user_id").loc[truth["user_id"], "favourite_preset"].to_numpy()
    draw = rng.random((len(truth), 3))
    source = np.where(
        draw[:, 0] < model["preset_agreement"],
        "style",
        np.where(draw[:, 1] < model["favourite_share"], "favourite", "neighbour"),
    )
    neighbour = [
        NEIGHBOURS[style][int(u * 2)] for style, u in zip(truth["style"], draw[:, 2], strict=True)
    ]
    truth["preset_source"] = source
    truth["preset_label"] = np.where(
        source == "style", truth["style"], np.where(source == "favourite", favourite, neighbour)
    )
    truth["aligned_ok"] = (
        truth["aligner_offset_ms"] - truth["offset_ms"]
    ).abs() <= ALIGN_TOLERANCE_MS
    return truth


def labels_table(jobs: pd.DataFrame, truth: pd.DataFrame, config: WorldConfig) -> pd.DataFrame:
    """The ``labels`` rows: three per job, minutes after the job was created."""
    rng = stream(config.seed, LABELS, 1)
    created = jobs.set_index("job_id").loc[truth["job_id"], "created_at"].to_numpy()
    done = pd.DatetimeIndex(created) + pd.to_timedelta(
        np.round(rng.uniform(120, 3600, len(truth))), unit="s"
    )
    rows = []
    for row, at in zip(truth.itertuples(index=False), done, strict=True):
        facts = row._asdict()
        master = {name: round(float(facts[f"label_{name}"]), 3) for name in MASTER_PARAM_NAMES}
        align = {"offset_ms": round(float(row.offset_ms), 2), "aligned_ok": bool(row.aligned_ok)}
        for task, label in (
            (MASTER_REG, master),
            (PRESET_CLS, {"preset": row.preset_label}),
            (ALIGN_CONF, align),
        ):
            rows.append(
                {"job_id": row.job_id, "task": task, "label": compact_json(label), "created_at": at}
            )
    return pd.DataFrame(rows)
