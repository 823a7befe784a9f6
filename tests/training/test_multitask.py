"""The multi-task network, the choice between candidates, transfer from the rules and the
learning curves, on a small world whose labels are known functions of the features."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from mixai_inference import FEATURE_NAMES
from mixai_inference.rules import TRACK_INPUTS
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
    task_spec,
)
from mixai_ml.evaluation.label_efficiency import (
    draw,
    learning_curve,
    recommended_min_samples,
)
from mixai_ml.evaluation.metrics import mae_norm
from mixai_ml.training.baselines import rules_predict
from mixai_ml.training.data import arrays, assign_splits
from mixai_ml.training.models import predict
from mixai_ml.training.multitask import shared_networks, train_shared, union_rows
from mixai_ml.training.runs import choose_candidate, train_task
from mixai_ml.training.trainer import FitConfig
from mixai_ml.training.transfer import pretrain_on_rules

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NET = {"hidden": [32], "dropout": 0.0, "seed": 7}
FIT = {
    "learning_rate": 0.01,
    "weight_decay": 0.0,
    "batch_size": 32,
    "max_epochs": 80,
    "patience": 15,
    "seed": 7,
}
SPLIT = {"test_fraction": 0.25, "validation_fraction": 0.2, "salt": "multitask"}
MIDS = np.array([(low + high) / 2 for low, high in MASTER_PARAM_RANGES.values()])
SPANS = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])


def model_inputs(n_users: int = 100, jobs_per_user: int = 4, seed: int = 0) -> dict[str, Any]:
    """Model inputs of master_reg and preset_cls sharing a latent: each job's style (the
    preset, visible in six of the 16 varying features) also sets the mastering parameters."""
    rng = np.random.default_rng(seed)
    n = n_users * jobs_per_user
    style = rng.integers(0, len(PRESETS), n)
    features = np.zeros((n, len(FEATURE_NAMES)), np.float32)  # constant: nothing to learn
    features[:, :16] = rng.normal(0.0, 1.0, (n, 16))
    features[np.arange(n), style] += 2.5
    z = features[:, 10]
    offsets = rng.normal(0.0, 0.1, (len(PRESETS), len(SPANS))) * SPANS
    master = MIDS + offsets[style] + 0.15 * SPANS * np.tanh(z)[:, None]
    base = pd.DataFrame(features, columns=list(FEATURE_NAMES))
    base.insert(0, "job_id", [f"J{k:05d}" for k in range(n)])
    base.insert(1, "user_id", [f"U{k // jobs_per_user:04d}" for k in range(n)])
    base.insert(2, "split", assign_splits(base["user_id"], **SPLIT).to_numpy())
    master_frame = base.copy()
    master_frame[list(task_spec(MASTER_REG).outputs)] = master
    preset_frame = base.copy()
    preset_frame["preset"] = style.astype(float)
    return {MASTER_REG: master_frame, PRESET_CLS: preset_frame}


PARAMS = {"net": NET, "fit": FIT}


def test_the_heads_share_one_trunk() -> None:
    networks = shared_networks((MASTER_REG, PRESET_CLS), 12, NET)
    master, preset = networks[MASTER_REG], networks[PRESET_CLS]
    assert master.body[0] is preset.body[0]  # the same hidden layer
    assert master.body[-1] is not preset.body[-1]
    shared = torch.nn.ModuleList(networks.values())
    distinct = sum(p.numel() for p in shared.parameters())
    assert distinct == 12 * 32 + 32 + (32 * 8 + 8) + (32 * 6 + 6)


@pytest.mark.slow
def test_the_multitask_network_learns_both_tasks_and_splits_apart() -> None:
    frames = model_inputs()
    heads = train_shared(frames, PARAMS, now=NOW, trunk="mix")
    master, preset = heads[MASTER_REG], heads[PRESET_CLS]
    inputs, targets = arrays(frames[MASTER_REG], MASTER_REG, "test")
    assert master.model is not None
    assert preset.model is not None
    spec = task_spec(MASTER_REG)
    constant = np.repeat(targets.mean(axis=0, keepdims=True), len(targets), axis=0)
    learned = mae_norm(targets, predict(master.model, inputs), spec.ranges)
    assert learned < 0.6 * mae_norm(targets, constant, spec.ranges)
    inputs, classes = arrays(frames[PRESET_CLS], PRESET_CLS, "test")
    accuracy = np.mean(predict(preset.model, inputs).argmax(axis=1) == classes)
    assert accuracy > 0.8
    assert master.info["architecture"] == "multi_task"
    assert master.info["shared_with"] == [PRESET_CLS]
    assert master.version != preset.version
    before = predict(preset.model, inputs)
    with torch.no_grad():
        master.model.body[0].weight.mul_(0.0)  # the copies no longer share weights
    np.testing.assert_array_equal(predict(preset.model, inputs), before)


@pytest.mark.slow
def test_the_candidate_is_the_better_network_on_validation() -> None:
    frames = model_inputs()
    job = {"training_job_id": "t", "status": "running"}
    single = train_task(MASTER_REG, frames[MASTER_REG], job, {**PARAMS, "baseline": {
        "estimator": "ridge"}}, now=NOW)  # fmt: skip
    multi = train_shared(frames, PARAMS, now=NOW, trunk="mix")[MASTER_REG]
    multi.info["training_job_id"] = "t"  # trained in the same run
    chosen = choose_candidate(single, multi, frames[MASTER_REG])
    record = chosen.info["architectures"]
    scores = record["validation"]
    better = "multi_task" if scores["multi_task"] < scores["single_task"] else "single_task"
    assert record["chosen"] == better
    assert chosen.version == record["versions"][better]
    assert chosen.baseline is single.baseline
    assert chosen.info["training_job_id"] == "t"
    multi.info["training_job_id"] = "an earlier run"  # the task retrains alone: its own net
    assert choose_candidate(single, multi, frames[MASTER_REG]) is single
    skipped = train_shared(frames, PARAMS, now=NOW, trunk="mix")[MASTER_REG]
    skipped.status, skipped.model = "skipped", None
    assert choose_candidate(single, skipped, frames[MASTER_REG]) is single


def test_a_trunk_needs_common_features_and_one_split() -> None:
    frames = model_inputs(n_users=10)
    moved = frames[PRESET_CLS].copy()
    moved.loc[0, "split"] = "test" if moved.loc[0, "split"] != "test" else "train"
    with pytest.raises(ValueError, match="different splits"):
        union_rows({MASTER_REG: frames[MASTER_REG], PRESET_CLS: moved})
    with pytest.raises(ValueError, match="do not read the features"):
        union_rows({MASTER_REG: frames[MASTER_REG], ALIGN_CONF: frames[MASTER_REG]})


@pytest.mark.slow
def test_pretraining_imitates_the_rules_without_labels() -> None:
    rng = np.random.default_rng(1)
    typical = np.zeros(len(FEATURE_NAMES))  # every feature the rules read varies about its
    for rule_input in TRACK_INPUTS.values():  # typical value
        typical[FEATURE_NAMES.index(rule_input.name)] = rule_input.typical
    pool, held = (
        (typical + rng.normal(0.0, 0.2, (n, len(FEATURE_NAMES))) * (np.abs(typical) + 1)).astype(
            np.float32
        )
        for n in (400, 100)
    )
    model = pretrain_on_rules(MASTER_REG, pool, held, NET, FitConfig(**FIT))
    spec = task_spec(MASTER_REG)
    rules = rules_predict(spec, held)
    spread = mae_norm(
        rules, np.repeat(rules.mean(axis=0, keepdims=True), len(rules), 0), spec.ranges
    )
    assert mae_norm(rules, predict(model, held), spec.ranges) < 0.5 * spread


def test_draws_are_nested_and_seeded() -> None:
    pool = pd.DataFrame({"job_id": range(50)})
    small, large = draw(pool, 10, seed=3), draw(pool, 30, seed=3)
    assert set(small["job_id"]) <= set(large["job_id"])
    assert draw(pool, 10, seed=3).equals(small)
    assert not draw(pool, 10, seed=4).equals(small)


def curve_entry(n: int, low: float, high: float) -> dict[str, Any]:
    interval = {"difference": (low + high) / 2, "ci_low": low, "ci_high": high}
    return {"n_labels": n, "scratch_vs_rules": interval, "transfer_vs_rules": interval}


def test_the_recommended_minimum_is_where_the_model_stays_reliably_better() -> None:
    # mae_norm: lower is better, so a CI entirely below zero is reliably better
    steady = [
        curve_entry(100, -0.05, 0.01),
        curve_entry(300, -0.05, -0.01),
        curve_entry(900, -0.1, -0.05),
    ]
    assert recommended_min_samples(MASTER_REG, steady, 0.8)["scratch"] == {
        "n_labels": 300,
        "min_samples": 400,  # 300 / 0.8 = 375, up to a multiple of 50
    }
    dip = [
        curve_entry(100, -0.05, -0.01),
        curve_entry(300, -0.02, 0.01),
        curve_entry(900, -0.1, -0.05),
    ]
    assert recommended_min_samples(MASTER_REG, dip, 0.8)["scratch"]["n_labels"] == 900
    never = [curve_entry(100, -0.05, -0.01), curve_entry(900, -0.01, 0.02)]
    assert recommended_min_samples(MASTER_REG, never, 0.8)["scratch"] == {
        "n_labels": None,
        "min_samples": None,
    }
    # macro-F1: higher is better
    assert (
        recommended_min_samples(PRESET_CLS, [curve_entry(100, 0.1, 0.3)], 0.5)["transfer"][
            "min_samples"
        ]
        == 200
    )


@pytest.mark.slow
def test_the_learning_curve_scores_scratch_and_transfer_on_the_test_users() -> None:
    frame = model_inputs()[PRESET_CLS]
    curve = learning_curve(
        PRESET_CLS,
        frame,
        PARAMS,
        {"sizes": [60], "repeats": 2, "seed": 0, "pretrain": FIT},
        {"n_resamples": 50, "seed": 0},
    )
    assert [entry["n_labels"] for entry in curve] == [60, int((frame["split"] != "test").sum())]
    assert [entry["repeats"] for entry in curve] == [2, 1]
    for entry in curve:
        assert entry["diff"] == pytest.approx(entry["transfer"] - entry["scratch"])
        assert entry["diff_ci_low"] <= entry["diff"] <= entry["diff_ci_high"]
        assert entry["scratch_vs_rules"]["difference"] == pytest.approx(
            entry["scratch"] - entry["rules"]
        )
    assert curve[-1]["scratch"] > curve[-1]["rules"]  # the labels teach what the rules miss
