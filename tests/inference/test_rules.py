"""The rule-based estimators: known answers, ranges, name lookup and robustness."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_factory import ALIGN_NAMES, FEATURE_NAMES, RULES, typical_features

from mixai_inference.rules import ALIGN_INPUTS, TRACK_INPUTS, Rules
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_PARAM_RANGES, PRESETS


def features(**values: float) -> np.ndarray:
    """Typical features with some rule inputs (by role) changed."""
    row = typical_features().astype(np.float64)
    for role, value in values.items():
        row[FEATURE_NAMES.index(TRACK_INPUTS[role].name)] = value
    return row


def master(row: np.ndarray) -> dict[str, float]:
    return dict(zip(MASTER_PARAM_NAMES, RULES.master_params(row[None, :])[0], strict=True))


def top_preset(row: np.ndarray) -> str:
    return PRESETS[int(np.argmax(RULES.preset_scores(row[None, :])[0]))]


def test_a_typical_mix_gets_the_reference_master() -> None:
    assert master(features()) == pytest.approx(
        {
            "target_lufs": -14.0,
            "eq_low_gain_db": 0.0,
            "eq_mid_gain_db": 0.0,
            "eq_high_gain_db": 0.0,
            "comp_threshold_db": -14.0 + 6.0 - 2.0,
            "comp_ratio": 1.5 + 0.25 * 3,
            "limiter_ceiling_dbtp": -1.0,
            "stereo_width": 1.0,
        }
    )


def test_eq_corrects_half_the_band_deviation_from_the_reference() -> None:
    params = master(features(band_low=-3.0 + 2.0, band_mid=-4.0 - 6.0, band_high=-14.0 - 30))
    assert params["eq_low_gain_db"] == pytest.approx(-1.0)
    assert params["eq_mid_gain_db"] == pytest.approx(3.0)
    assert params["eq_high_gain_db"] == 6.0  # 15 dB asked, clipped to the range


def test_dynamics_drive_target_threshold_ratio() -> None:
    dynamic = master(features(lra=16.0, crest=18.0, lufs=-23.0))
    assert dynamic["target_lufs"] == pytest.approx(-14.0 - 0.25 * 8)
    assert dynamic["comp_threshold_db"] == pytest.approx(-23.0 + 9.0 - 2.0)
    assert dynamic["comp_ratio"] == pytest.approx(1.5 + 0.25 * 12 + 0.1 * 6)


def test_width_follows_stereo_correlation() -> None:
    assert master(features(correlation=1.0))["stereo_width"] == pytest.approx(1.24)
    assert master(features(correlation=-0.5))["stereo_width"] == pytest.approx(0.5)  # clipped


@pytest.mark.parametrize(
    ("roles", "preset"),
    [
        ({}, "natural"),
        ({"centroid": 6000.0, "tempo": 118.0}, "bright_pop"),
        ({"centroid": 900.0, "tempo": 70.0, "lra": 10.0}, "warm_ballad"),
        ({"tempo": 150.0, "crest": 15.0, "centroid": 2500.0}, "punchy_rock"),
        ({"tempo": 128.0, "lra": 3.0}, "loud_edm"),
        ({"lra": 12.0, "tempo": 85.0, "centroid": 1800.0}, "soft_acoustic"),
    ],
)
def test_presets_follow_the_descriptors(roles: dict[str, float], preset: str) -> None:
    assert top_preset(features(**roles)) == preset
    # the level of an unmastered upload says nothing about its style
    for lufs in (-30.0, -9.0):
        assert top_preset(features(**roles, lufs=lufs)) == preset


def test_align_confidence_is_a_logistic_of_psr_and_segment_agreement() -> None:
    cases = np.array([[10.0, 0.5], [14.0, 0.5], [10.0, 1.0], [6.0, 0.0], [40.0, 1.0]])
    rows = np.zeros((len(cases), len(ALIGN_NAMES)))
    for k, role in enumerate(("psr", "agreement")):
        rows[:, ALIGN_NAMES.index(ALIGN_INPUTS[role].name)] = cases[:, k]
    confidence = RULES.align_confidence(rows)
    expected = 1 / (1 + np.exp(-np.array([0.0, 2.0, 2.0, -4.0, 17.0])))
    np.testing.assert_allclose(confidence, expected)


def test_any_finite_or_missing_input_gives_finite_answers_inside_the_ranges() -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2000, len(FEATURE_NAMES))) * 10.0 ** rng.integers(-3, 30, (2000, 1))
    rows[::7, 0] = np.nan
    rows[::11, 1] = np.inf
    rows[::13] = -1e300
    params = RULES.master_params(rows)
    scores = RULES.preset_scores(rows)
    assert np.isfinite(params).all()
    assert np.isfinite(scores).all()
    for k, (low, high) in enumerate(MASTER_PARAM_RANGES.values()):
        assert (params[:, k] >= low).all()
        assert (params[:, k] <= high).all()
    assert np.allclose(scores.sum(axis=1), 1.0)
    with np.errstate(over="ignore"):
        huge = rng.standard_normal((50, len(ALIGN_NAMES))) * 1e308  # some overflow to inf
    confidence = RULES.align_confidence(huge)
    assert np.isfinite(confidence).all()


def test_non_finite_inputs_are_read_as_typical_values() -> None:
    row = features(lufs=np.nan, crest=np.inf)
    np.testing.assert_allclose(
        master(row)["comp_threshold_db"], master(features())["comp_threshold_db"]
    )


def test_features_are_looked_up_by_name_not_position() -> None:
    order = np.random.default_rng(1).permutation(len(FEATURE_NAMES))
    shuffled = Rules([FEATURE_NAMES[i] for i in order], ALIGN_NAMES)
    row = features(lufs=-9.0, centroid=4000.0, band_low=2.0)
    np.testing.assert_allclose(
        shuffled.master_params(row[order][None, :]), RULES.master_params(row[None, :])
    )
    np.testing.assert_allclose(
        shuffled.preset_scores(row[order][None, :]), RULES.preset_scores(row[None, :])
    )


def test_batches_equal_rows_one_by_one() -> None:
    rows = np.stack([features(lufs=v, tempo=60 + 10 * v % 90) for v in np.linspace(-30, -5, 9)])
    batch = RULES.master_params(rows)
    one_by_one = np.concatenate([RULES.master_params(r[None, :]) for r in rows])
    np.testing.assert_array_equal(batch, one_by_one)


def test_missing_names_and_wrong_widths_raise() -> None:
    with pytest.raises(ValueError, match="loudness_integrated_lufs"):
        Rules(FEATURE_NAMES[1:], ALIGN_NAMES)
    with pytest.raises(ValueError, match=r"shape \(n, "):
        RULES.master_params(np.zeros((1, len(FEATURE_NAMES) + 1)))


def test_one_vector_functions_use_the_package_features() -> None:
    features_module = pytest.importorskip("mixai_inference.features")
    pytest.importorskip("mixai_inference.alignment")
    from mixai_inference.rules import (
        align_confidence_from_features,
        master_params_from_features,
        preset_scores_from_features,
    )

    rules = Rules.default()
    row = np.zeros(len(features_module.FEATURE_NAMES))
    assert master_params_from_features(row) == dict(
        zip(MASTER_PARAM_NAMES, rules.master_params(row[None, :])[0].tolist(), strict=True)
    )
    np.testing.assert_array_equal(
        preset_scores_from_features(row), rules.preset_scores(row[None, :])[0]
    )
    align = np.zeros(len(rules.alignment_feature_names))
    assert align_confidence_from_features(align) == rules.align_confidence(align[None, :])[0]
