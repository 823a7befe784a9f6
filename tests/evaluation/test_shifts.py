"""The known audio shifts the guard is evaluated on: each does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from mixai_ml.evaluation.shifts import ShiftedAudio, apply_shift, check_shifts, time_factor

SR = 44_100


def tone(hz: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None, :]


def rms_db(audio: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))))


def peak_hz(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.fft.rfftfreq(audio.shape[1], 1 / sr)[np.argmax(spectrum)])


def test_gain_scales_the_level_exactly() -> None:
    audio = tone(440.0)
    shifted, sr = apply_shift(audio, SR, {"kind": "gain", "db": -20}, seed=0)
    assert sr == SR
    assert rms_db(shifted) - rms_db(audio) == pytest.approx(-20.0, abs=1e-4)


def test_lowpass_keeps_the_pass_band_and_removes_the_stop_band() -> None:
    shift = {"kind": "lowpass", "hz": 3000}
    low, _ = apply_shift(tone(500.0), SR, shift, seed=0)
    high, _ = apply_shift(tone(8000.0), SR, shift, seed=0)
    steady = slice(SR // 10, None)  # after the filter's transient
    assert rms_db(low[:, steady]) - rms_db(tone(500.0)) == pytest.approx(0.0, abs=0.1)
    assert rms_db(high[:, steady]) - rms_db(tone(8000.0)) < -60.0  # 8th order: 48 dB/octave


def test_noise_is_added_at_the_requested_snr_and_fixed_by_the_seed() -> None:
    audio = tone(440.0, seconds=2.0)
    shift = {"kind": "noise", "snr_db": 10}
    shifted, _ = apply_shift(audio, SR, shift, seed=3)
    noise = shifted - audio
    assert rms_db(audio) - rms_db(noise) == pytest.approx(10.0, abs=0.05)
    assert np.array_equal(shifted, apply_shift(audio, SR, shift, seed=3)[0])
    assert not np.array_equal(shifted, apply_shift(audio, SR, shift, seed=4)[0])


def test_a_misread_sample_rate_changes_pitch_and_duration() -> None:
    """Recorded at 48 kHz, read as 44.1 kHz: everything is 44.1/48 as high and 48/44.1 as long."""
    shift = {"kind": "rate", "recorded_hz": 48_000, "read_hz": 44_100}
    shifted, sr = apply_shift(tone(1000.0), SR, shift, seed=0)
    assert sr == 44_100
    assert shifted.shape[1] == pytest.approx(SR * 48_000 / 44_100, abs=2)
    assert peak_hz(shifted, sr) == pytest.approx(1000.0 * 44_100 / 48_000, abs=1.5)
    assert time_factor(shift) == pytest.approx(44_100 / 48_000)
    assert time_factor({"kind": "gain", "db": 3}) == 1.0


def test_shifted_audio_loads_lazily_and_bad_shifts_are_named() -> None:
    loader = ShiftedAudio(lambda: (tone(440.0)[0], SR), {"kind": "gain", "db": 6}, seed=0)
    audio, sr = loader()
    assert (audio.ndim, sr) == (2, SR)
    assert rms_db(audio) - rms_db(tone(440.0)) == pytest.approx(6.0, abs=1e-4)
    with pytest.raises(ValueError, match=r"shifts\.muffled: needs a kind"):
        check_shifts({"muffled": {"kind": "lowpass"}})
    with pytest.raises(ValueError, match=r"shifts\.odd"):
        check_shifts({"odd": {"kind": "reverb"}})
