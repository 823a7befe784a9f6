"""Model inputs: label decoding, user-level splits, the governance join."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mixai_inference import ALIGNMENT_FEATURE_NAMES, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_ml.training.data import assign_splits, build_model_input, decode_labels

T0 = pd.Timestamp("2026-06-01", tz="UTC")
MASTER = {
    "target_lufs": -14.0,
    "eq_low_gain_db": 1.0,
    "eq_mid_gain_db": 0.0,
    "eq_high_gain_db": -1.0,
    "comp_threshold_db": -18.0,
    "comp_ratio": 2.5,
    "limiter_ceiling_dbtp": -1.0,
    "stereo_width": 1.1,
}


def test_decode_labels_keeps_contract_labels_and_counts_the_rest() -> None:
    labels = pd.DataFrame(
        {
            "job_id": ["a", "b", "c", "d", "e", "f"],
            "task": ["master_reg"] * 4 + ["preset_cls", "align_conf"],
            "label": [
                json.dumps(MASTER),
                json.dumps({**MASTER, "comp_ratio": 12.0}),  # out of range
                "not json",
                json.dumps({k: v for k, v in MASTER.items() if k != "stereo_width"}),
                json.dumps({"preset": "loud_edm"}),
                json.dumps({"offset_ms": 3.0, "aligned_ok": True}),
            ],
        }
    )
    master, dropped = decode_labels(labels, "master_reg")
    assert master["job_id"].tolist() == ["a"]
    assert master.iloc[0]["comp_ratio"] == 2.5
    assert dropped == 3
    presets, _ = decode_labels(labels, "preset_cls")
    assert presets["preset"].tolist() == [4.0]
    aligned, _ = decode_labels(labels, "align_conf")
    assert aligned["aligned_ok"].tolist() == [1.0]


def test_splits_are_by_user_stable_and_close_to_the_fractions() -> None:
    users = pd.Series([f"user-{i % 2000}" for i in range(6000)])
    split = assign_splits(users, test_fraction=0.2, validation_fraction=0.15, salt="s1")
    per_user = pd.DataFrame({"user": users, "split": split}).groupby("user")["split"].nunique()
    assert (per_user == 1).all()  # never one user on both sides
    shares = split.groupby(users).first().value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["validation"] == pytest.approx(0.15, abs=0.03)
    # the test users do not depend on who else is in the data
    subset = assign_splits(users[:900], test_fraction=0.2, validation_fraction=0.15, salt="s1")
    assert (subset == split[:900]).all()
    other_salt = assign_splits(users, test_fraction=0.2, validation_fraction=0.15, salt="s2")
    assert (other_salt != split).any()


def test_build_model_input_joins_filters_and_counts() -> None:
    jobs = pd.DataFrame(
        {"job_id": [f"j{i}" for i in range(6)], "user_id": ["u1", "u1", "u2", "u3", "u4", "u5"]}
    )
    consent = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u5"],
            "consented": [True, True, False, True],
            "updated_at": T0,
            "withdrawn_at": pd.NaT,
        }
    )
    exclusions = pd.DataFrame(
        {"exclusion_id": ["x"], "user_id": [None], "job_id": ["j1"], "reason": ["quality"]}
    )
    labels = pd.DataFrame(
        {"job_id": jobs["job_id"], "task": "preset_cls", "label": json.dumps({"preset": "natural"})}
    )
    rng = np.random.default_rng(0)
    names = [*FEATURE_NAMES, *ALIGNMENT_FEATURE_NAMES]
    features = pd.DataFrame(rng.normal(size=(5, len(names))), columns=names)
    features.insert(0, "job_id", ["j0", "j1", "j2", "j3", "j4"])  # j5 has no features
    features.insert(1, "schema_version", FEATURE_SCHEMA_VERSION)

    frame, counts = build_model_input(
        "preset_cls",
        features,
        labels,
        jobs,
        consent,
        exclusions,
        {"test_fraction": 0.5, "validation_fraction": 0.25, "salt": "x"},
    )

    assert frame["job_id"].tolist() == ["j0", "j2"]
    assert counts == {
        "labelled": 6,
        "no_consent": 1,
        "withdrawn": 1,
        "excluded_legal_hold": 0,
        "excluded_withdrawal": 0,
        "excluded_quality": 1,
        "excluded_manual": 0,
        "invalid_label": 0,
        "missing_features": 1,
        "n_samples": 2,
    }
    assert list(frame.columns[:3]) == ["job_id", "user_id", "split"]
    assert frame.shape[1] == 3 + len(FEATURE_NAMES) + 1
