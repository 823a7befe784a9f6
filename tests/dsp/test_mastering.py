"""The mastering chain on known signals: EQ gains, compressor curve, limiter ceiling, width."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixai_inference import measure_loudness
from mixai_ml.dsp.mastering import (
    PARAM_NAMES,
    PARAM_RANGES,
    MasteringParams,
    apply_eq,
    clip_to_ranges,
    compress,
    gain_reduction,
    limit_true_peak,
    peak_hold,
    render_master,
    set_stereo_width,
    smoothing_coefficient,
)

SR = 44100
CONTRACT_RANGES = {  # docs/data_contracts.md §3, in contract order
    "target_lufs": (-20.0, -6.0),
    "eq_low_gain_db": (-6.0, 6.0),
    "eq_mid_gain_db": (-6.0, 6.0),
    "eq_high_gain_db": (-6.0, 6.0),
    "comp_threshold_db": (-30.0, 0.0),
    "comp_ratio": (1.0, 8.0),
    "limiter_ceiling_dbtp": (-3.0, 0.0),
    "stereo_width": (0.5, 1.5),
}


def tone(freq_hz: float, seconds: float = 1.0, peak: float = 0.1, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.tile(peak * np.sin(2 * np.pi * freq_hz * t), (channels, 1))


def rms_db(audio: np.ndarray, skip_s: float = 0.3) -> float:
    """RMS level in dB after the filters' transients."""
    steady = audio[..., int(skip_s * SR) :]
    return 10.0 * math.log10(float(np.mean(np.square(steady))))


def gain_db(processed: np.ndarray, original: np.ndarray) -> float:
    return rms_db(processed) - rms_db(original)


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo noise and tones with a 2 Hz level modulation: broadband, dynamic, partly wide."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2
    common = rng.standard_normal(t.size) * 0.1 + 0.2 * np.sin(2 * np.pi * 110 * t)
    return np.stack([envelope * (common + 0.05 * rng.standard_normal(t.size)), envelope * common])


# --- parameters ---------------------------------------------------------------------------------


def test_parameter_ranges_are_the_contract_in_contract_order() -> None:
    assert dict(PARAM_RANGES) == CONTRACT_RANGES
    assert list(PARAM_NAMES) == list(CONTRACT_RANGES)
    assert list(MasteringParams().as_dict()) == list(CONTRACT_RANGES)


@pytest.mark.parametrize(("name", "value"), [("eq_low_gain_db", 6.5), ("comp_ratio", 0.5)])
def test_out_of_range_parameters_are_rejected_with_their_name(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name}={value}.*outside its range"):
        MasteringParams(**{name: value})


def test_non_numbers_and_nan_are_rejected() -> None:
    with pytest.raises(ValueError, match="stereo_width must be a number"):
        MasteringParams(stereo_width="wide")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target_lufs=nan"):
        MasteringParams(target_lufs=float("nan"))


def test_from_mapping_checks_keys_and_clips_on_request() -> None:
    label = MasteringParams(eq_low_gain_db=2.0).as_dict()
    assert MasteringParams.from_mapping(label) == MasteringParams(eq_low_gain_db=2.0)
    with pytest.raises(ValueError, match=r"missing \['stereo_width'\]"):
        MasteringParams.from_mapping({k: v for k, v in label.items() if k != "stereo_width"})
    with pytest.raises(ValueError, match=r"unknown \['gain'\]"):
        MasteringParams.from_mapping({**label, "gain": 1.0})
    clipped = MasteringParams.from_mapping(
        {**label, "comp_ratio": 12.0, "target_lufs": -30.0}, clip=True
    )
    assert (clipped.comp_ratio, clipped.target_lufs) == (8.0, -20.0)


def test_clip_to_ranges_clips_each_column() -> None:
    low = np.array([low for low, _ in CONTRACT_RANGES.values()])
    high = np.array([high for _, high in CONTRACT_RANGES.values()])
    values = np.stack([low - 1.0, high + 1.0, (low + high) / 2])
    np.testing.assert_array_equal(clip_to_ranges(values), np.stack([low, high, (low + high) / 2]))


# --- equaliser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bands", "boosted_hz", "untouched_hz"),
    [
        ((6.0, 0.0, 0.0), 50.0, 5000.0),  # low shelf 100 Hz
        ((0.0, 6.0, 0.0), 2500.0, 100.0),  # peak 2.5 kHz
        ((0.0, 6.0, 0.0), 2500.0, 16000.0),
        ((0.0, 0.0, 6.0), 16000.0, 1000.0),  # high shelf 8 kHz
    ],
)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_each_band_moves_its_tone_by_its_gain_and_leaves_others(
    bands: tuple[float, float, float], boosted_hz: float, untouched_hz: float, sign: float
) -> None:
    low, mid, high = (sign * gain for gain in bands)
    boosted = tone(boosted_hz)
    untouched = tone(untouched_hz)
    assert gain_db(apply_eq(boosted, SR, low, mid, high), boosted) == pytest.approx(
        6.0 * sign, abs=0.5
    )
    assert gain_db(apply_eq(untouched, SR, low, mid, high), untouched) == pytest.approx(
        0.0, abs=0.5
    )


def test_flat_eq_is_the_identity() -> None:
    audio = music_like(1.0)
    np.testing.assert_array_equal(apply_eq(audio, SR, 0.0, 0.0, 0.0), audio)


# --- dynamics -----------------------------------------------------------------------------------


def test_gain_reduction_follows_the_soft_knee_curve() -> None:
    threshold, ratio, knee = -20.0, 4.0, 6.0
    levels = np.array([-40.0, -23.0, -20.0, -17.0, -10.0, 0.0])
    expected = np.array([0.0, 0.0, 0.75 * knee / 8.0, 0.75 * 3.0, 0.75 * 10.0, 0.75 * 20.0])
    np.testing.assert_allclose(gain_reduction(levels, threshold, ratio, knee), expected, atol=1e-12)
    np.testing.assert_allclose(
        gain_reduction(levels, threshold, ratio, 0.0), 0.75 * np.maximum(levels + 20.0, 0.0)
    )


def test_peak_hold_equals_the_recursive_detector() -> None:
    x = np.maximum(np.random.default_rng(1).normal(size=3000), 0.0) * 10.0
    alpha = smoothing_coefficient(5.0, SR)
    expected = np.empty_like(x)
    previous = 0.0
    for n, value in enumerate(x):
        previous = max(value, alpha * previous)
        expected[n] = previous
    np.testing.assert_allclose(peak_hold(x, alpha), np.maximum(expected, 1e-12), rtol=1e-9)


def test_compressor_follows_its_static_curve_on_a_level_step() -> None:
    """A 1 kHz tone steps from -30 to -6 dBFS peak; above the threshold the level ratio is 4:1."""
    quiet, loud = tone(1000.0, 1.0, 10 ** (-30 / 20)), tone(1000.0, 1.0, 10 ** (-6 / 20))
    out = compress(np.concatenate([quiet, loud], axis=1), SR, threshold_db=-20.0, ratio=4.0)

    def steady_peak_db(segment: np.ndarray) -> float:
        return 20.0 * math.log10(float(np.abs(segment[:, -int(0.3 * SR) :]).max()))

    quiet_db, loud_db = steady_peak_db(out[:, :SR]), steady_peak_db(out[:, SR:])
    assert quiet_db == pytest.approx(-30.0, abs=0.05)  # below the knee: untouched
    assert loud_db == pytest.approx(-20.0 + 14.0 / 4.0, abs=0.3)  # -16.5 dBFS
    assert loud_db - quiet_db == pytest.approx(24.0 - 14.0 * 0.75, abs=0.3)  # 24 dB step -> 13.5


def test_ratio_one_leaves_the_audio_unchanged() -> None:
    audio = music_like(1.0)
    np.testing.assert_array_equal(compress(audio, SR, -30.0, 1.0), audio)


def test_limiter_holds_its_ceiling_on_loud_material() -> None:
    loud = music_like(4.0) * 8.0  # peaks far above full scale
    for ceiling in (-3.0, -1.0, -0.1):
        limited = limit_true_peak(loud, SR, ceiling)
        assert measure_loudness(limited, SR)["true_peak_dbtp"] <= ceiling + 0.1
        assert measure_loudness(limited, SR)["true_peak_dbtp"] >= ceiling - 0.5


def test_limiter_leaves_audio_below_its_ceiling_alone() -> None:
    quiet = music_like(1.0) * 0.1
    np.testing.assert_array_equal(limit_true_peak(quiet, SR, -1.0), quiet)


# --- stereo -------------------------------------------------------------------------------------


def test_width_one_is_the_identity_and_zero_is_mono() -> None:
    audio = music_like(1.0)
    np.testing.assert_array_equal(set_stereo_width(audio, 1.0), audio)
    mono = set_stereo_width(audio, 0.0)
    np.testing.assert_allclose(mono[0], mono[1], atol=1e-15)
    np.testing.assert_allclose(mono[0], audio.mean(axis=0), atol=1e-15)


def test_width_scales_the_side_signal_and_keeps_the_mid() -> None:
    audio = music_like(1.0)
    wide = set_stereo_width(audio, 1.5)
    np.testing.assert_allclose(wide.sum(axis=0), audio.sum(axis=0), atol=1e-12)
    np.testing.assert_allclose(wide[0] - wide[1], 1.5 * (audio[0] - audio[1]), atol=1e-12)


# --- the chain ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-20.0, -16.0, -12.0])
def test_master_reaches_its_target_loudness(target: float) -> None:
    mix = music_like(6.0) * 0.2  # an unmastered mix around -25 LUFS
    params = MasteringParams(
        target_lufs=target,
        eq_low_gain_db=2.0,
        eq_high_gain_db=-1.0,
        comp_threshold_db=target - 6.0,
        comp_ratio=2.0,
        limiter_ceiling_dbtp=-1.0,
        stereo_width=1.2,
    )
    master = render_master(mix.astype(np.float32), SR, params)
    measured = measure_loudness(master, SR)
    assert measured["integrated_lufs"] == pytest.approx(target, abs=0.5)
    assert measured["true_peak_dbtp"] <= -1.0 + 0.1


def test_master_of_loud_targets_holds_the_ceiling() -> None:
    params = MasteringParams(
        target_lufs=-6.0, comp_threshold_db=-10.0, comp_ratio=4.0, limiter_ceiling_dbtp=-0.3
    )
    master = render_master(music_like(5.0).astype(np.float32), SR, params)
    assert measure_loudness(master, SR)["true_peak_dbtp"] <= -0.3 + 0.1


def test_master_keeps_the_relative_eq_of_two_tones() -> None:
    """Through the whole chain, +6 dB low shelf raises 50 Hz by 6 dB against 5 kHz."""
    t = np.arange(5 * SR) / SR
    two_tones = np.tile(0.05 * (np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 5000 * t)), (2, 1))
    flat = render_master(two_tones, SR, MasteringParams(target_lufs=-20.0))
    boosted = render_master(two_tones, SR, MasteringParams(target_lufs=-20.0, eq_low_gain_db=6.0))

    def tone_db(audio: np.ndarray, freq: float) -> float:
        spectrum = np.abs(np.fft.rfft(audio[0, SR:]))
        return 20.0 * math.log10(spectrum[round(freq * (audio.shape[1] - SR) / SR)])

    relative = (tone_db(boosted, 50) - tone_db(boosted, 5000)) - (
        tone_db(flat, 50) - tone_db(flat, 5000)
    )
    assert relative == pytest.approx(6.0, abs=0.5)


def test_master_keeps_shape_and_returns_float32() -> None:
    mono = music_like(4.0)[0].astype(np.float32)
    out = render_master(mono, SR, MasteringParams())
    assert out.shape == mono.shape
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((3, SR * 4)), "1 or 2 channels"),
        (np.zeros((2, SR * 4), dtype=np.int16), "float"),
        (np.full((2, SR * 4), np.nan), "NaN"),
    ],
)
def test_master_rejects_bad_audio(audio: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_master(audio, SR, MasteringParams())
