"""The rule-based aligner: known offsets recovered within 20 ms, finite features everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_audio import as_take, music, noise, vocal_pair

from mixai_inference import ALIGNMENT_CONFIG, ALIGNMENT_FEATURE_NAMES, Alignment, estimate_alignment

SR = 22050
TOLERANCE_MS = 20.0


@pytest.mark.parametrize(
    ("offset_ms", "seed"),
    [(0.0, 0), (350.0, 1), (-120.0, 2), (1500.0, 3), (-1870.0, 4), (37.5, 5), (-5.0, 6)],
)
def test_known_offsets_are_recovered(offset_ms: float, seed: int) -> None:
    vocal, instrumental = vocal_pair(SR, 20.0, offset_ms, seed=seed)
    alignment = estimate_alignment(vocal, instrumental, SR)
    assert isinstance(alignment, Alignment)
    assert alignment.offset_ms == pytest.approx(offset_ms, abs=TOLERANCE_MS)
    values = alignment.as_dict()
    assert values["offset_ms"] == pytest.approx(alignment.offset_ms, abs=1e-3)
    # both methods land there: onset envelopes and GCC-PHAT (the waveforms share transients)
    assert values["gcc_phat_onset_disagreement_ms"] <= TOLERANCE_MS


@pytest.mark.parametrize(("offset_ms", "bleed_db"), [(730.0, -30.0), (-1210.0, -40.0)])
def test_bleed_is_aligned_by_gcc_phat(offset_ms: float, bleed_db: float) -> None:
    """A take that shares no rhythm with the groove but contains its bleed: sub-ms accuracy."""
    instrumental = music(SR, 20.0, bpm=97.0, seed=12)
    unrelated_voice, _ = vocal_pair(SR, 20.0, 0.0, seed=13, bpm=71.0)
    take = unrelated_voice + 10 ** (bleed_db / 20) * instrumental.mean(axis=0)
    alignment = estimate_alignment(as_take(take, offset_ms, SR), instrumental, SR)
    assert alignment.offset_ms == pytest.approx(offset_ms, abs=1.0)
    values = alignment.as_dict()
    assert values["gcc_phat_used"] == 1.0
    assert values["gcc_phat_peak_to_sidelobe_ratio"] >= ALIGNMENT_CONFIG["gcc_min_psr"]


def test_sign_convention_positive_means_delay_the_vocal() -> None:
    """The vocal file starts 250 ms early: delaying it by +250 ms lines it up."""
    vocal, instrumental = vocal_pair(SR, 20.0, 0.0, seed=7)
    early_vocal = vocal[round(0.25 * SR) :]
    assert estimate_alignment(early_vocal, instrumental, SR).offset_ms == pytest.approx(
        250.0, abs=TOLERANCE_MS
    )
    late_vocal = np.concatenate([np.zeros(round(0.25 * SR), np.float32), vocal])
    assert estimate_alignment(late_vocal, instrumental, SR).offset_ms == pytest.approx(
        -250.0, abs=TOLERANCE_MS
    )


def test_stereo_stems_at_another_rate() -> None:
    vocal, instrumental = vocal_pair(44100, 15.0, 420.0, seed=8)
    stereo_instrumental = np.stack([instrumental, 0.8 * instrumental])
    alignment = estimate_alignment(vocal, stereo_instrumental, 44100)
    assert alignment.offset_ms == pytest.approx(420.0, abs=TOLERANCE_MS)


def _features(vocal: np.ndarray, instrumental: np.ndarray) -> dict[str, float]:
    alignment = estimate_alignment(vocal, instrumental, SR)
    assert alignment.features.dtype == np.float32
    assert alignment.features.shape == (len(ALIGNMENT_FEATURE_NAMES),)
    assert np.all(np.isfinite(alignment.features)), alignment.as_dict()
    return alignment.as_dict()


@pytest.mark.parametrize(
    ("vocal", "instrumental"),
    [
        pytest.param(np.zeros(5 * SR), np.zeros(5 * SR), id="both_silent"),
        pytest.param(np.zeros(5 * SR), vocal_pair(SR, 5.0, 0.0)[1], id="silent_vocal"),
        pytest.param(noise(SR, 4.0)[0], noise(SR, 6.0, seed=1), id="noise"),
        pytest.param(np.full(4 * SR, 0.5), np.full(4 * SR, -0.5), id="dc"),
    ],
)
def test_features_are_finite_on_degenerate_input(
    vocal: np.ndarray, instrumental: np.ndarray
) -> None:
    _features(vocal.astype(np.float32), instrumental.astype(np.float32))


def test_silence_gives_no_shift_and_no_evidence() -> None:
    values = _features(np.zeros(5 * SR, np.float32), np.zeros(5 * SR, np.float32))
    assert values["offset_ms"] == 0.0
    assert values["xcorr_peak"] == 0.0
    assert values["vocal_activity_ratio"] == 0.0
    assert values["vocal_rms_dbfs"] == -120.0
    assert values["offset_margin_ms"] == ALIGNMENT_CONFIG["max_offset_ms"]
    assert values["gcc_phat_used"] == 0.0


def test_features_separate_a_true_pair_from_an_unrelated_one() -> None:
    vocal, instrumental = vocal_pair(SR, 20.0, 300.0, seed=9)
    other_vocal, _ = vocal_pair(SR, 20.0, 0.0, seed=10)
    matched = _features(vocal, instrumental)
    unrelated = _features(other_vocal, instrumental)
    # the unrelated vocal shares the tempo grid, so some correlation remains; what separates
    # the pairs is how singular and consistent the peak is
    assert matched["xcorr_peak"] > 1.5 * unrelated["xcorr_peak"]
    assert matched["xcorr_peak_to_sidelobe_ratio"] > 1.3 * unrelated["xcorr_peak_to_sidelobe_ratio"]
    assert matched["xcorr_second_peak_ratio"] < unrelated["xcorr_second_peak_ratio"] - 0.2
    assert matched["segment_agreement_ratio"] > unrelated["segment_agreement_ratio"]
    assert (
        matched["segment_offset_spread_ms"] < TOLERANCE_MS < unrelated["segment_offset_spread_ms"]
    )
    assert matched["vocal_duration_s"] == pytest.approx(19.7, abs=1e-3)
    assert matched["instrumental_duration_s"] == pytest.approx(20.0, abs=1e-3)


def test_alignment_is_deterministic() -> None:
    vocal, instrumental = vocal_pair(SR, 10.0, 80.0, seed=11)
    first = estimate_alignment(vocal, instrumental, SR)
    second = estimate_alignment(vocal.copy(), instrumental.copy(), SR)
    assert first.offset_ms == second.offset_ms
    np.testing.assert_array_equal(first.features, second.features)
