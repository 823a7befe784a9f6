"""Tempo and beat strength against librosa on rhythmic signals at several tempi."""

from __future__ import annotations

import numpy as np
import pytest
from librosa_oracle import librosa_families
from synthetic_audio import click_track, music

from mixai_inference import FEATURE_NAMES, extract_features

SR = 22050  # the analysis rate: no resampling, so the oracle sees exactly the same signal


def _features(audio: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, extract_features(audio, SR).tolist(), strict=True))


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(click_track(bpm, SR, 12.0), id=f"clicks_{bpm}bpm")
        for bpm in (72.0, 96.0, 120.0, 150.0, 180.0)
    ]
    + [
        pytest.param(music(SR, 12.0, bpm=bpm, seed=2), id=f"groove_{bpm}bpm")
        for bpm in (88.0, 110.0, 136.0)
    ],
)
def test_tempo_and_beat_strength_match_librosa(audio: np.ndarray) -> None:
    ours = _features(audio)
    oracle = librosa_families(audio, SR)
    assert ours["tempo_bpm"] == pytest.approx(float(oracle["tempo_bpm"][0, 0]), rel=1e-6)
    strength = oracle["beat_strength"][:, 0]
    assert len(strength) > 3, "the tracker found beats"
    expected = [strength.mean(), strength.std(), strength.min(), strength.max()]
    actual = [ours[f"beat_strength_{stat}"] for stat in ("mean", "std", "min", "max")]
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4 * max(expected))


@pytest.mark.parametrize("bpm", [96.0, 120.0, 150.0])
def test_click_tempo_is_the_click_rate(bpm: float) -> None:
    """Known answer: clicks at ``bpm`` read ``bpm`` within one autocorrelation lag."""
    tempo = _features(click_track(bpm, SR, 12.0))["tempo_bpm"]
    lag_frames = 60.0 * SR / 512 / bpm
    assert abs(tempo - bpm) <= bpm / lag_frames
