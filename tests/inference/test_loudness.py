"""Loudness and true peak: pyloudnorm, ITU-R BS.1770-4, EBU Tech 3341 / 3342 cases.

The EBU cases are synthesized from their written definitions (1 kHz stereo sines at the
stated dBFS peak level) since the reference files are not redistributable. Tolerances are
the specifications': integrated / momentary / short-term +-0.1 LU, LRA +-1 LU, true peak
+0.2 / -0.4 dB.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
from synthetic_audio import music, noise, sine, tone_sequence

from mixai_inference import measure_loudness
from mixai_inference._iir import IIRState, lfilter_chunk
from mixai_inference.loudness import LOUDNESS_FLOOR_LUFS, PEAK_FLOOR_DB, k_weighting_filter

LU = 0.1


def _pyloudnorm(audio: np.ndarray, sr: int, filter_class: str) -> float:
    meter = pyloudnorm.Meter(sr, filter_class=filter_class)
    return float(meter.integrated_loudness(audio.T.astype(np.float64)))


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("signal", ["noise", "music", "mono_music"])
def test_integrated_matches_pyloudnorm_bs1770_filter(sr: int, signal: str) -> None:
    """pyloudnorm's "DeMan" filter class is the exact BS.1770-4 K-weighting at any rate."""
    audio = {
        "noise": lambda: noise(sr, 8.0, rms_dbfs=-18.0),
        "music": lambda: music(sr, 8.0, seed=1),
        "mono_music": lambda: music(sr, 8.0, seed=2)[:1],
    }[signal]()
    ours = measure_loudness(audio, sr)["integrated_lufs"]
    assert ours == pytest.approx(_pyloudnorm(audio, sr, "DeMan"), abs=1e-3)  # measured ~1e-10


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_integrated_matches_pyloudnorm_default_meter(sr: int) -> None:
    """pyloudnorm's default filters approximate K-weighting (RBJ cookbook): within 0.1 LU."""
    audio = music(sr, 8.0, seed=3)
    ours = measure_loudness(audio, sr)["integrated_lufs"]
    assert ours == pytest.approx(_pyloudnorm(audio, sr, "K-weighting"), abs=LU)


def test_k_weighting_at_48k_is_the_bs1770_table() -> None:
    (shelf_b, shelf_a), (hp_b, hp_a) = k_weighting_filter(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285])
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585])
    np.testing.assert_allclose(hp_b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(hp_a, [1.0, -1.99004745483398, 0.99007225036621])


@pytest.mark.parametrize("n_channels", [1, 2])
@pytest.mark.parametrize("sr", [8000, 44100, 192000])
def test_chunked_iir_equals_scipy_lfilter(sr: int, n_channels: int) -> None:
    """Also when the caller overwrites a chunk's output (loudness squares it in place)."""
    rng = np.random.default_rng(sr)
    x = rng.standard_normal((n_channels, 3 * sr + 123))
    for b, a in k_weighting_filter(sr):
        state = IIRState(b, a, n_channels=n_channels)
        cut = sr + 17
        first = lfilter_chunk(x[:, :cut], state, sr // 20)
        kept = first.copy()
        first[:] = 0.0
        ours = np.concatenate([kept, lfilter_chunk(x[:, cut:], state, sr // 20)], axis=1)
        expected = scipy.signal.lfilter(b, a, x, axis=1)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7 * np.abs(expected).max())
        x = expected


# -- EBU Tech 3341 (EBU Mode loudness meters) ---------------------------------------------------

TECH_3341_INTEGRATED = {
    "case1_-23dBFS": ([(-23.0, 20.0)], -23.0),
    "case2_-33dBFS": ([(-33.0, 20.0)], -33.0),
    "case3_-36_-23_-36": ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
    "case4_-72_-36_-23_-36_-72": (
        [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)],
        -23.0,
    ),
    "case5_-26_-20_-26": ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
}


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("case", sorted(TECH_3341_INTEGRATED))
def test_tech_3341_integrated(case: str, sr: int) -> None:
    segments, expected = TECH_3341_INTEGRATED[case]
    assert measure_loudness(tone_sequence(segments, sr), sr)["integrated_lufs"] == pytest.approx(
        expected, abs=LU
    )


def test_tech_3341_steady_tone_reads_the_same_everywhere() -> None:
    result = measure_loudness(tone_sequence([(-23.0, 20.0)], 48000), 48000)
    for key in ("integrated_lufs", "momentary_max_lufs", "short_term_max_lufs"):
        assert result[key] == pytest.approx(-23.0, abs=LU), key


def test_tech_3341_short_term_constant() -> None:
    """Case 9: 20 x (1.34 s at -20 dBFS, 1.66 s at -30 dBFS): every 3 s window reads -23."""
    audio = tone_sequence([(-20.0, 1.34), (-30.0, 1.66)] * 20, 48000)
    assert measure_loudness(audio, 48000)["short_term_max_lufs"] == pytest.approx(-23.0, abs=LU)


def test_tech_3341_momentary_constant() -> None:
    """Case 12 style: 0.18 s at -20 dBFS then 0.22 s at -30 dBFS, repeated: every 400 ms
    window holds one period, 10 log10((0.18 * 10^-2 + 0.22 * 10^-3) / 0.4) = -22.97."""
    audio = tone_sequence([(-20.0, 0.18), (-30.0, 0.22)] * 50, 48000)
    result = measure_loudness(audio, 48000)
    assert result["momentary_max_lufs"] == pytest.approx(-22.97, abs=LU)


def test_momentary_and_short_term_maxima_of_a_burst() -> None:
    """A 4 s burst at -20 dBFS in -36 dBFS programme: both maxima read the burst."""
    audio = tone_sequence([(-36.0, 6.0), (-20.0, 4.0), (-36.0, 6.0)], 48000)
    result = measure_loudness(audio, 48000)
    assert result["momentary_max_lufs"] == pytest.approx(-20.0, abs=LU)
    assert result["short_term_max_lufs"] == pytest.approx(-20.0, abs=LU)


# -- EBU Tech 3342 (loudness range) ------------------------------------------------------------

TECH_3342 = {
    "case1_-20_-30": ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
    "case2_-20_-15": ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
    "case3_-40_-20": ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
    "case4_-50_-35_-20_-35_-50": (
        [(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)],
        15.0,
    ),
}


@pytest.mark.parametrize("case", sorted(TECH_3342))
def test_tech_3342_loudness_range(case: str) -> None:
    segments, expected = TECH_3342[case]
    lra = measure_loudness(tone_sequence(segments, 48000), 48000)["loudness_range_lu"]
    assert lra == pytest.approx(expected, abs=1.0)


def test_loudness_range_agrees_with_pyloudnorm() -> None:
    audio = tone_sequence([(-30.0, 10.0), (-18.0, 10.0), (-26.0, 10.0)], 44100)
    ours = measure_loudness(audio, 44100)["loudness_range_lu"]
    expected = pyloudnorm.Meter(44100, filter_class="DeMan").loudness_range(audio.T)
    assert ours == pytest.approx(expected, abs=1.0)


# -- true peak (BS.1770-4 Annex 2, Tech 3341 true-peak cases) ----------------------------------

TRUE_PEAK_CASES = {
    # (frequency as a fraction of fs, phase in degrees, true peak dBTP)
    "fs/4_45deg_-6dBTP": (1 / 4, 45.0, -6.0),
    "fs/6_60deg_-6dBTP": (1 / 6, 60.0, -6.0),
    "fs/8_67.5deg_-6dBTP": (1 / 8, 67.5, -6.0),
    "fs/4_45deg_+3dBTP": (1 / 4, 45.0, 3.0),
    "1kHz_0dBTP": (1000 / 48000, 0.0, 0.0),
}


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("case", sorted(TRUE_PEAK_CASES))
def test_true_peak_inter_sample_sines(case: str, sr: int) -> None:
    fraction, phase, expected = TRUE_PEAK_CASES[case]
    audio = sine(fraction * sr, sr, 3.0, peak_dbfs=expected, phase_deg=phase)
    true_peak = measure_loudness(audio, sr)["true_peak_dbtp"]
    assert expected - 0.4 <= true_peak <= expected + 0.2


def test_true_peak_sees_between_samples() -> None:
    """fs/4 at 45 deg: every sample is at -3 dB of the peak; 4x oversampling finds the peak."""
    audio = sine(12000.0, 48000, 3.0, peak_dbfs=-6.0, phase_deg=45.0)
    sample_peak = 20 * np.log10(np.abs(audio).max())
    assert sample_peak == pytest.approx(-9.01, abs=0.01)
    assert measure_loudness(audio, 48000)["true_peak_dbtp"] == pytest.approx(-6.0, abs=0.05)


def test_true_peak_matches_scipy_polyphase_oversampling() -> None:
    audio = music(44100, 6.0, seed=4)
    oversampled = scipy.signal.resample_poly(audio.astype(np.float64), 4, 1, axis=1)
    expected = 20 * np.log10(np.abs(oversampled).max())
    assert measure_loudness(audio, 44100)["true_peak_dbtp"] == pytest.approx(expected, abs=0.05)


def test_silence_reads_the_documented_floors() -> None:
    result = measure_loudness(np.zeros((2, 5 * 48000), dtype=np.float32), 48000)
    assert result == {
        "integrated_lufs": LOUDNESS_FLOOR_LUFS,
        "momentary_max_lufs": LOUDNESS_FLOOR_LUFS,
        "short_term_max_lufs": LOUDNESS_FLOOR_LUFS,
        "loudness_range_lu": 0.0,
        "true_peak_dbtp": PEAK_FLOOR_DB,
    }


def test_mono_is_one_channel_of_bs1770() -> None:
    """Mono reads 3 LU below the same signal on both channels of a stereo file."""
    stereo = tone_sequence([(-23.0, 10.0)], 48000)
    mono = measure_loudness(stereo[0], 48000)["integrated_lufs"]
    assert mono == pytest.approx(-23.0 - 10 * np.log10(2), abs=0.01)
