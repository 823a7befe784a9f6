"""Evaluation metrics on known answers, bootstrap coverage, the promotion rule."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from sklearn import metrics as skm

from mixai_inference.tasks import MASTER_PARAM_RANGES, PRESETS
from mixai_ml.evaluation.bootstrap import paired_bootstrap
from mixai_ml.evaluation.evaluate import gap_closed
from mixai_ml.evaluation.metrics import (
    classification_metrics,
    ece_noise_floor,
    expected_calibration_error,
    macro_f1,
    mae_norm,
    probability_metrics,
    regression_metrics,
    roc_auc,
)
from mixai_ml.evaluation.promotion import PromotionPolicy, decide

SPANS = np.array([high - low for low, high in MASTER_PARAM_RANGES.values()])


def test_mae_norm_divides_each_error_by_its_range() -> None:
    truth = np.zeros((4, 8))
    predicted = truth + SPANS * 0.1  # every parameter off by 10 % of its range
    assert mae_norm(truth, predicted, MASTER_PARAM_RANGES) == pytest.approx(0.1)
    metrics = regression_metrics(truth, predicted, MASTER_PARAM_RANGES)
    assert metrics["mae_norm"] == pytest.approx(0.1)
    assert metrics["per_parameter"]["comp_ratio"]["mae"] == pytest.approx(0.7)
    assert metrics["per_parameter"]["target_lufs"]["rmse"] == pytest.approx(1.4)


def test_classification_metrics_on_a_known_confusion() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    scores = np.eye(6)[[0, 1, 1, 1, 2, 0]] + np.eye(6)[[1, 0, 0, 0, 0, 2]] * 0.5
    metrics = classification_metrics(truth, scores, PRESETS)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["top2_accuracy"] == pytest.approx(1.0)
    # F1: class 0: p=1/2, r=1/2 -> 0.5; class 1: p=2/3, r=1 -> 0.8; class 2: p=1, r=1/2 -> 2/3;
    # classes 3-5 absent -> 0; macro over six presets
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 6)
    assert metrics["confusion_matrix"][0][:3] == [1, 1, 0]


def test_ece_is_zero_for_calibrated_bins_and_the_gap_otherwise() -> None:
    outcomes = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    probabilities = np.array([0.25] * 4 + [0.75] * 4)
    assert expected_calibration_error(outcomes, probabilities) == pytest.approx(0.0)
    assert expected_calibration_error(outcomes, np.full(8, 0.9)) == pytest.approx(0.4)


def test_probability_metrics_of_a_perfect_ranking() -> None:
    outcomes = np.array([0, 0, 1, 1])
    metrics = probability_metrics(outcomes, np.array([0.1, 0.2, 0.8, 0.9]))
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)


def test_paired_bootstrap_covers_the_true_difference() -> None:
    """A model with 20 % smaller errors: the 95 % CI should cover the truth ~95 % of the time."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(40):
        truth = np.zeros((300, 8))
        noise = rng.normal(size=(300, 8)) * SPANS
        better, worse = truth + 0.08 * noise, truth + 0.10 * noise
        expected = (0.08 - 0.10) * np.sqrt(2 / np.pi)  # E|N(0, s^2)| = s * sqrt(2/pi), /span
        ci = paired_bootstrap(
            truth,
            better,
            worse,
            partial(mae_norm, ranges=MASTER_PARAM_RANGES),
            n_resamples=200,
            seed=1,
        )
        covered += ci["ci_low"] <= expected <= ci["ci_high"]
        assert ci["difference"] < 0
    assert covered >= 34


def test_promotion_needs_both_margins_and_calibration() -> None:
    metrics = {
        "model": {"roc_auc": 0.80, "ece": 0.03},
        "rules": {"roc_auc": 0.70},
        "active": {"roc_auc": 0.79},
    }
    policy = PromotionPolicy(min_gain_vs_rules=0.05, min_gain_vs_active=0.005, max_ece=0.05)
    assert decide("align_conf", "v2", metrics, policy, "v1").promote
    slim = PromotionPolicy(min_gain_vs_rules=0.05, min_gain_vs_active=0.02, max_ece=0.05)
    refused = decide("align_conf", "v2", metrics, slim, "v1")
    assert not refused.promote
    assert any("vs active v1" in reason and "<" in reason for reason in refused.reasons)
    lower_is_better = {"model": {"mae_norm": 0.10}, "rules": {"mae_norm": 0.14}}
    assert decide("master_reg", "v1", lower_is_better, PromotionPolicy(0.02, 0.0)).promote
    assert not decide("master_reg", "", {}, PromotionPolicy(0.0, 0.0)).promote


def test_ece_noise_floor_matches_calibrated_simulations() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.uniform(0, 1, 300)
    floor = ece_noise_floor(probabilities, draws=300)
    outcomes = (rng.random(300) < probabilities).astype(float)
    assert 0.02 < floor < 0.10  # several hundredths on 300 examples
    assert expected_calibration_error(outcomes, probabilities) < 3 * floor
    assert ece_noise_floor(probabilities, draws=300) == floor  # seeded
    assert ece_noise_floor(np.repeat(probabilities, 100), draws=20) < floor / 5


def test_fast_macro_f1_and_roc_auc_equal_scikit_learns() -> None:
    """The bootstrap's fast versions against scikit-learn (the oracle), with absent classes,
    ties and one-class resamples."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 200))
        truth = rng.integers(0, 4, n)  # classes 4 and 5 never chosen
        scores = rng.random((n, 6))
        expected = skm.f1_score(
            truth, scores.argmax(axis=1), labels=range(6), average="macro", zero_division=0
        )
        assert macro_f1(truth, scores) == pytest.approx(expected, abs=1e-12), trial
        outcomes = (rng.random(n) < 0.3).astype(float)
        probabilities = np.round(rng.random(n), 1)  # many ties
        if len(np.unique(outcomes)) == 2:
            assert roc_auc(outcomes, probabilities) == pytest.approx(
                skm.roc_auc_score(outcomes, probabilities), abs=1e-12
            )
    assert np.isnan(roc_auc(np.ones(5), rng.random(5)))


def test_gap_closed_is_the_share_of_the_way_from_the_rules_to_the_oracle() -> None:
    lower = gap_closed("master_reg", {"rules": 0.2, "oracle": 0.05, "model": 0.08, "active": 0.2})
    assert lower == pytest.approx({"model": 0.8, "active": 0.0})
    higher = gap_closed("preset_cls", {"rules": 0.2, "oracle": 0.8, "model": 0.65})
    assert higher == pytest.approx({"model": 0.75})
    assert gap_closed("preset_cls", {"rules": 0.2, "oracle": 0.2, "model": 0.5}) == {}
