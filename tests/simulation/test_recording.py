"""Uploads and amateur mixes: offsets and trimming by construction, deviations in descriptors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixai_inference import estimate_alignment
from mixai_ml.simulation.recording import (
    PCM16_ZERO,
    MixSpec,
    TakeSpec,
    amateur_mix,
    describe,
    leading_silence,
    phrase_gate,
    render_job_audio,
)
from mixai_ml.simulation.styles import STYLES
from mixai_ml.simulation.synth import Song, draw_song_spec, render_song

SR = 44100


def take(**overrides: object) -> TakeSpec:
    values: dict[str, object] = {
        "recording_offset_ms": 0.0,
        "lead_silence_s": 0.0,
        "bleed_db": None,
        "noise_dbfs": -120.0,
        "hum": False,
        "gated": False,
        "reverb_s": 0.0,
        "peak_dbfs": -3.0,
        "instrumental_peak_dbfs": -1.0,
    }
    return TakeSpec(**{**values, **overrides})  # type: ignore[arg-type]


def mix_spec(**overrides: object) -> MixSpec:
    values: dict[str, object] = {
        "vocal_db": -3.0,
        "tone_db": (0.0, 0.0, 0.0),
        "dynamics": 0.0,
        "width": 1.0,
        "rms_dbfs": -20.0,
    }
    return MixSpec(**{**values, **overrides})  # type: ignore[arg-type]


def click_song(seconds: float = 4.0, vocal_at_s: float = 1.0) -> Song:
    """Drums: a click every 0.5 s from sample 0; the voice: one 50 ms burst at ``vocal_at_s``."""
    samples = int(seconds * SR)
    drums = np.zeros((2, samples), dtype=np.float32)
    drums[:, :: SR // 2] = 0.5
    vocal = np.zeros(samples, dtype=np.float32)
    start = int(vocal_at_s * SR)
    vocal[start : start + int(0.05 * SR)] = 0.5
    return Song(
        drums=drums,
        music=np.zeros_like(drums),
        vocal=vocal,
        vocal_onsets_s=np.array([vocal_at_s]),
        phrase_bounds_s=np.array([[vocal_at_s, vocal_at_s + 0.05]]),
    )


def _onset_s(vocal: np.ndarray) -> float:
    """Where the (noise-free, bleed-free) vocal upload first sounds, s."""
    return float(np.flatnonzero(np.abs(vocal) > 0.01)[0] / SR)


def test_trimming_removes_the_leading_silence_and_moves_the_offset() -> None:
    """Sung 120 ms late against an upload with 0.5 s of silence: -380 ms against the trimmed one."""
    audio = render_job_audio(
        click_song(),
        take(recording_offset_ms=120.0, lead_silence_s=0.5),
        mix_spec(),
        SR,
        np.random.default_rng(0),
    )
    assert audio.trimmed is not None
    assert audio.trimmed_s == pytest.approx(0.5, abs=1.0 / SR)
    np.testing.assert_array_equal(audio.instrumental[:, int(0.5 * SR) :], audio.trimmed)
    assert audio.offset_ms == pytest.approx(120.0 - 500.0, abs=1000.0 / SR)
    # the voice (song time 1.0 s) must be advanced by 380 ms: it starts at 1.38 s in the file
    assert _onset_s(audio.vocal) == pytest.approx(1.38, abs=0.001)


def test_uploads_without_leading_silence_are_not_trimmed() -> None:
    audio = render_job_audio(
        click_song(), take(recording_offset_ms=-250.0), mix_spec(), SR, np.random.default_rng(0)
    )
    assert audio.trimmed is None
    assert audio.trimmed_s == 0.0
    assert audio.offset_ms == pytest.approx(-250.0, abs=1000.0 / SR)
    assert _onset_s(audio.vocal) == pytest.approx(1.25, abs=0.001)


@pytest.mark.parametrize(("offset_ms", "lead_s"), [(230.0, 0.0), (-140.0, 0.0), (90.0, 0.4)])
def test_the_production_aligner_finds_the_true_offset_of_a_bleeding_take(
    offset_ms: float, lead_s: float
) -> None:
    """Pins the offset convention shared with mixai_inference.estimate_alignment."""
    rng = np.random.default_rng(3)
    song = render_song(draw_song_spec(STYLES["punchy_rock"], 6.0, rng), SR, rng)
    audio = render_job_audio(
        song,
        take(recording_offset_ms=offset_ms, lead_silence_s=lead_s, bleed_db=-6.0),
        mix_spec(),
        SR,
        rng,
    )
    reference = audio.trimmed if audio.trimmed is not None else audio.instrumental
    estimate = estimate_alignment(audio.vocal, reference, SR).offset_ms
    assert estimate == pytest.approx(audio.offset_ms, abs=20.0)


def test_leading_silence_counts_samples_that_are_zero_in_16_bit() -> None:
    audio = np.zeros((2, 100), dtype=np.float32)
    audio[1, 40] = PCM16_ZERO  # rounds to 0
    audio[0, 60] = 1.01 * PCM16_ZERO
    assert leading_silence(audio) == 60
    assert leading_silence(np.zeros((2, 10))) == 10


def test_phrase_gate_opens_around_each_phrase() -> None:
    gate = phrase_gate(np.array([[1.0, 2.0]]), 3 * SR, SR, margin_s=0.1)
    assert gate[int(0.5 * SR)] == 0.0
    assert gate[int(1.5 * SR)] == pytest.approx(1.0)
    assert gate[int(2.05 * SR)] == pytest.approx(1.0)
    assert gate[int(2.5 * SR)] == 0.0


@pytest.fixture(scope="module")
def stems() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    song = render_song(draw_song_spec(STYLES["natural"], 6.0, rng), SR, rng)
    return song.drums, song.music, song.vocal


def _mix(
    stems: tuple[np.ndarray, np.ndarray, np.ndarray], **overrides: object
) -> tuple[np.ndarray, np.ndarray]:
    return amateur_mix(*stems, mix_spec(**overrides), SR, np.random.default_rng(0))


def test_a_mix_without_deviations_balances_like_its_reference(
    stems: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    mix, reference = _mix(stems)
    a, b = describe(mix, SR), describe(reference, SR)
    for name in ("low_db", "mid_db", "high_db", "crest_db", "side_db"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), abs=0.01)
    assert a.rms_dbfs == pytest.approx(-20.0, abs=0.01)


@pytest.mark.parametrize(
    ("band", "tone"),
    [("low_db", (6.0, 0.0, 0.0)), ("mid_db", (0.0, 6.0, 0.0)), ("high_db", (0.0, 0.0, 6.0))],
)
def test_tone_deviations_raise_their_band(
    stems: tuple[np.ndarray, np.ndarray, np.ndarray], band: str, tone: tuple[float, float, float]
) -> None:
    mix, reference = _mix(stems, tone_db=tone)
    # the band's share of the total rises by less than the gain where it already dominates
    assert getattr(describe(mix, SR), band) - getattr(describe(reference, SR), band) > 1.5


def test_width_deviation_raises_the_side_level(
    stems: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    mix, reference = _mix(stems, width=1.5)
    change = describe(mix, SR).side_db - describe(reference, SR).side_db
    assert change == pytest.approx(20.0 * math.log10(1.5), abs=0.1)


def test_dynamics_deviations_move_the_crest_factor(
    stems: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    reference_crest = describe(_mix(stems)[0], SR).crest_db
    assert describe(_mix(stems, dynamics=-1.0)[0], SR).crest_db < reference_crest - 2.0
    assert describe(_mix(stems, dynamics=1.0)[0], SR).crest_db > reference_crest + 1.0


def test_descriptors_of_known_signals() -> None:
    t = np.arange(SR) / SR
    low = np.tile(0.1 * np.sin(2 * np.pi * 50 * t), (2, 1))
    high = np.stack([0.1 * np.sin(2 * np.pi * 10000 * t), np.zeros(SR)])
    low_facts, high_facts = describe(low, SR), describe(high, SR)
    assert low_facts.low_db > -0.1
    assert low_facts.high_db < -40.0
    assert high_facts.high_db > -0.1
    assert high_facts.low_db < -40.0
    assert low_facts.side_db == -60.0  # mono
    assert high_facts.side_db == pytest.approx(0.0, abs=1e-6)  # one channel: side = mid
    assert low_facts.crest_db == pytest.approx(20.0 * math.log10(math.sqrt(2.0)), abs=0.01)
    assert low_facts.rms_dbfs == pytest.approx(20.0 * math.log10(0.1 / math.sqrt(2.0)), abs=0.01)
