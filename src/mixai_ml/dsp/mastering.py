"""The mastering chain that renders ``master_reg`` parameters (docs/data_contracts.md §3).

Signal flow of :func:`render_master`, on ``(channels, samples)`` audio at ``sr`` Hz:

1. gain to ``target_lufs`` (integrated loudness, ITU-R BS.1770-4, measured by
   :func:`mixai_inference.measure_loudness`);
2. equaliser: low shelf at 100 Hz, peak at 2.5 kHz (Q 1), high shelf at 8 kHz (shelf
   slope 1), biquads from R. Bristow-Johnson's *Audio EQ Cookbook*;
3. feed-forward compressor after D. Giannoulis, M. Massberg, J. D. Reiss, "Digital
   Dynamic Range Compressor Design — A Tutorial and Analysis", JAES 60(6), 2012:
   stereo-linked peak level in dB, soft-knee gain computer, decoupled peak detector
   (instant attack with exponential release, then one-pole attack smoothing) in the
   log domain; no automatic make-up gain (step 5 restores the loudness);
4. mid/side stereo width;
5. make-up gain back to ``target_lufs``;
6. lookahead true-peak limiter: the gain reduction needed by a 4× oversampled peak
   envelope (the interpolation filter of the loudness meter, BS.1770-4 Annex 2) is held
   over the lookahead window, released exponentially and ramped in by a moving
   average, so the output's true peak stays at the ceiling.

Every stage is vectorised: the recursive detectors are evaluated exactly with a
cumulative maximum in the log domain (see :func:`peak_hold`) and ``lfilter``, so the
chain renders 10 s of stereo 44.1 kHz audio well over 50× faster than real time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Final, overload

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.signal import lfilter, sosfilt

from mixai_inference import measure_loudness
from mixai_inference.loudness import true_peak_phases
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_PARAM_RANGES

PARAM_RANGES: Final = MASTER_PARAM_RANGES
"""Mastering parameters in contract order, each with its inclusive (low, high) range."""
PARAM_NAMES: Final = MASTER_PARAM_NAMES

EQ_LOW_HZ: Final = 100.0
EQ_MID_HZ: Final = 2500.0
EQ_MID_Q: Final = 1.0
EQ_HIGH_HZ: Final = 8000.0
SHELF_SLOPE: Final = 1.0
COMP_ATTACK_MS: Final = 10.0
COMP_RELEASE_MS: Final = 100.0
COMP_KNEE_DB: Final = 6.0
LIMITER_LOOKAHEAD_MS: Final = 1.5
LIMITER_RELEASE_MS: Final = 50.0
LIMITER_MARGIN_DB: Final = 0.02
"""The limiter aims this far below its ceiling (the gain between samples is interpolated)."""
_MIN_LOUDNESS_LUFS: Final = -70.0
"""Below the BS.1770 absolute gate the signal is treated as silence and not amplified."""
_TINY: Final = 1e-12
_DB_TO_NEPER: Final = math.log(10.0) / 20.0


@dataclass(frozen=True)
class MasteringParams:
    """The eight ``master_reg`` parameters (docs/data_contracts.md §3); defaults: a transparent
    master.

    Attributes:
        target_lufs: integrated loudness of the output, LUFS.
        eq_low_gain_db: gain of the 100 Hz low shelf, dB.
        eq_mid_gain_db: gain of the 2.5 kHz peak, dB.
        eq_high_gain_db: gain of the 8 kHz high shelf, dB.
        comp_threshold_db: compressor threshold, dBFS (after the gain to target loudness).
        comp_ratio: compressor ratio (1 = no compression).
        limiter_ceiling_dbtp: true-peak ceiling of the limiter, dBTP.
        stereo_width: side-signal gain (0 = mono, 1 = unchanged).

    Raises:
        ValueError: if a value is not a finite number within :data:`PARAM_RANGES`.
    """

    target_lufs: float = -14.0
    eq_low_gain_db: float = 0.0
    eq_mid_gain_db: float = 0.0
    eq_high_gain_db: float = 0.0
    comp_threshold_db: float = 0.0
    comp_ratio: float = 1.0
    limiter_ceiling_dbtp: float = -1.0
    stereo_width: float = 1.0

    def __post_init__(self) -> None:
        for name in PARAM_NAMES:
            value = getattr(self, name)
            low, high = PARAM_RANGES[name]
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {value!r}") from None
            if not (math.isfinite(number) and low <= number <= high):
                raise ValueError(
                    f"{name}={value!r} is outside its range [{low}, {high}] "
                    "(docs/data_contracts.md §3)"
                )
            object.__setattr__(self, name, number)

    @classmethod
    def from_mapping(cls, values: Mapping[str, float], *, clip: bool = False) -> MasteringParams:
        """Parameters from a label or prediction dict with exactly the eight keys.

        Args:
            values: parameter name -> value.
            clip: clip each value into its range first (for model predictions).

        Raises:
            ValueError: on missing or unknown keys, or (without ``clip``) values out of range.
        """
        missing = [name for name in PARAM_NAMES if name not in values]
        unknown = sorted(set(values) - set(PARAM_NAMES))
        if missing or unknown:
            raise ValueError(f"mastering parameters: missing {missing}, unknown {unknown}")
        if clip:
            return cls(**{name: _clip(name, float(values[name])) for name in PARAM_NAMES})
        return cls(**{name: values[name] for name in PARAM_NAMES})

    def as_dict(self) -> dict[str, float]:
        """The parameters as a label dict, in contract order."""
        return asdict(self)


@overload
def db_to_gain(level_db: float) -> float: ...
@overload
def db_to_gain(level_db: np.ndarray) -> np.ndarray: ...
def db_to_gain(level_db: float | np.ndarray) -> float | np.ndarray:
    """Linear amplitude gain of a level in dB (``exp``: much faster than ``10 **`` on arrays)."""
    if isinstance(level_db, np.ndarray):
        return np.exp(level_db * _DB_TO_NEPER)
    return math.exp(level_db * _DB_TO_NEPER)


def _clip(name: str, value: float) -> float:
    low, high = PARAM_RANGES[name]
    return min(max(value, low), high)


def clip_to_ranges(values: np.ndarray) -> np.ndarray:
    """Clip parameter vectors into :data:`PARAM_RANGES`.

    Args:
        values: ``(..., 8)`` parameters in contract order.

    Returns:
        An array of the same shape, each column within its range.
    """
    low = np.array([PARAM_RANGES[name][0] for name in PARAM_NAMES])
    high = np.array([PARAM_RANGES[name][1] for name in PARAM_NAMES])
    return np.clip(values, low, high)


# --- equaliser (RBJ Audio EQ Cookbook) ---------------------------------------------------------


def _shelf(f0: float, gain_db: float, sr: float, slope: float, high: bool) -> np.ndarray:
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / sr
    cos_w0 = math.cos(w0)
    alpha = math.sin(w0) / 2.0 * math.sqrt((amp + 1.0 / amp) * (1.0 / slope - 1.0) + 2.0)
    root = 2.0 * math.sqrt(amp) * alpha
    sign = -1.0 if high else 1.0  # RBJ's low- and high-shelf formulas differ only in these signs
    b0 = amp * ((amp + 1) - sign * (amp - 1) * cos_w0 + root)
    b1 = sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * cos_w0)
    b2 = amp * ((amp + 1) - sign * (amp - 1) * cos_w0 - root)
    a0 = (amp + 1) + sign * (amp - 1) * cos_w0 + root
    a1 = -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos_w0)
    a2 = (amp + 1) + sign * (amp - 1) * cos_w0 - root
    return np.array([b0, b1, b2, a0, a1, a2]) / a0


def low_shelf(f0: float, gain_db: float, sr: float, slope: float = SHELF_SLOPE) -> np.ndarray:
    """RBJ low-shelf biquad: ``gain_db`` below ``f0`` (half of it at ``f0``).

    Returns:
        One second-order section ``(6,)``: ``b0, b1, b2, 1, a1, a2``.
    """
    return _shelf(f0, gain_db, sr, slope, high=False)


def high_shelf(f0: float, gain_db: float, sr: float, slope: float = SHELF_SLOPE) -> np.ndarray:
    """RBJ high-shelf biquad: ``gain_db`` above ``f0`` (half of it at ``f0``); shape ``(6,)``."""
    return _shelf(f0, gain_db, sr, slope, high=True)


def peak(f0: float, gain_db: float, q: float, sr: float) -> np.ndarray:
    """RBJ peaking-EQ biquad: ``gain_db`` at ``f0`` with quality factor ``q``; shape ``(6,)``."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / sr
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    a0 = 1.0 + alpha / amp
    return (
        np.array([1 + alpha * amp, -2 * cos_w0, 1 - alpha * amp, a0, -2 * cos_w0, 1 - alpha / amp])
        / a0
    )


def apply_eq(
    audio: np.ndarray, sr: float, low_db: float, mid_db: float, high_db: float
) -> np.ndarray:
    """The three-band mastering EQ (100 Hz low shelf, 2.5 kHz peak, 8 kHz high shelf).

    Args:
        audio: ``(channels, samples)`` float.
        sr: sample rate, Hz.
        low_db, mid_db, high_db: band gains, dB; a 0 dB band is skipped.

    Returns:
        The filtered audio, ``(channels, samples)`` float64.
    """
    sections = [
        section
        for gain, section in (
            (low_db, low_shelf(EQ_LOW_HZ, low_db, sr)),
            (mid_db, peak(EQ_MID_HZ, mid_db, EQ_MID_Q, sr)),
            (high_db, high_shelf(EQ_HIGH_HZ, high_db, sr)),
        )
        if gain != 0.0
    ]
    if not sections:
        return np.asarray(audio, dtype=np.float64)
    return np.asarray(sosfilt(np.stack(sections), audio, axis=-1), dtype=np.float64)


# --- dynamics (Giannoulis, Massberg & Reiss 2012) -----------------------------------------------


def smoothing_coefficient(time_ms: float, sr: float) -> float:
    """One-pole coefficient ``exp(-1 / (tau * sr))`` of a time constant ``time_ms``."""
    return math.exp(-1000.0 / (time_ms * sr))


def peak_hold(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exact vectorised ``y[n] = max(x[n], alpha * y[n-1])`` along the last axis.

    The decoupled peak detector with instant attack and exponential release
    (Giannoulis et al. 2012, §3.3). Since ``x >= 0``, taking logarithms turns it into
    ``log y[n] = n log(alpha) + cummax_k(log x[k] - k log(alpha))``.

    Args:
        x: ``(..., samples)`` non-negative values (e.g. gain reduction in dB).
        alpha: release coefficient in (0, 1), see :func:`smoothing_coefficient`.

    Returns:
        ``y``, the same shape as ``x``.
    """
    ramp = -math.log(alpha) * np.arange(x.shape[-1], dtype=np.float64)
    held = np.maximum.accumulate(np.log(np.maximum(x, _TINY)) + ramp, axis=-1)
    # values decayed below _TINY are floored there (and denormals never reach exp)
    return np.asarray(np.exp(np.maximum(held - ramp, math.log(_TINY))))


def gain_reduction(
    level_db: np.ndarray, threshold_db: float, ratio: float, knee_db: float
) -> np.ndarray:
    """Static soft-knee gain reduction, dB >= 0 (Giannoulis et al. 2012, eq. 4).

    The output level is ``level_db - gain_reduction(level_db)``: unchanged below the knee,
    ``threshold + (level - threshold) / ratio`` above it, quadratic within it.

    Args:
        level_db: input levels, dB.
        threshold_db, ratio, knee_db: threshold (dB), ratio (>= 1), knee width (dB, >= 0).

    Returns:
        Gain reduction, dB, the shape of ``level_db``.
    """
    over = level_db - threshold_db
    slope = 1.0 - 1.0 / ratio
    if knee_db <= 0.0:
        return slope * np.maximum(over, 0.0)
    in_knee = np.clip(over + knee_db / 2.0, 0.0, knee_db)
    return slope * (in_knee * in_knee / (2.0 * knee_db) + np.maximum(over - knee_db / 2.0, 0.0))


def compress(
    audio: np.ndarray,
    sr: float,
    threshold_db: float,
    ratio: float,
    *,
    attack_ms: float = COMP_ATTACK_MS,
    release_ms: float = COMP_RELEASE_MS,
    knee_db: float = COMP_KNEE_DB,
) -> np.ndarray:
    """Feed-forward, stereo-linked compressor with a log-domain detector.

    Level ``x_G`` = 20 log10 of the per-sample peak over channels; gain reduction
    ``x_L =`` :func:`gain_reduction` of ``x_G``; a decoupled peak detector smooths it
    (:func:`peak_hold` for the release, a one-pole filter for the attack).

    Args:
        audio: ``(channels, samples)`` float.
        sr: sample rate, Hz.
        threshold_db: dBFS; ratio: >= 1 (1 leaves the audio unchanged).
        attack_ms, release_ms: time constants, ms; knee_db: soft-knee width, dB.

    Returns:
        The compressed audio, ``(channels, samples)`` float64.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if ratio == 1.0:
        return audio
    level_db = 20.0 * np.log10(np.maximum(np.abs(audio).max(axis=0), _TINY).astype(np.float32))
    reduction_db = gain_reduction(level_db, threshold_db, ratio, knee_db)
    held = peak_hold(reduction_db, smoothing_coefficient(release_ms, sr))
    alpha_attack = smoothing_coefficient(attack_ms, sr)
    smoothed = lfilter([1.0 - alpha_attack], [1.0, -alpha_attack], held)
    return audio * db_to_gain(-smoothed)


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-sample true peak over channels, by 4× polyphase interpolation.

    Uses the interpolation filter of :func:`mixai_inference.measure_loudness`
    (BS.1770-4 Annex 2), so the limiter and the loudness meter agree on true peaks.

    Args:
        audio: ``(channels, samples)`` float.

    Returns:
        ``(samples,)`` float32: the largest absolute value at ``n``, ``n + 1/4``, ``n + 2/4``
        and ``n + 3/4`` over channels.
    """
    phases = true_peak_phases()
    taps = phases.shape[1]
    envelope = np.abs(audio).max(axis=0).astype(np.float32)
    for channel in np.asarray(audio, dtype=np.float32):
        padded = np.pad(channel, (taps // 2 - 1, taps // 2))
        for phase in phases:
            np.maximum(
                envelope, np.abs(np.convolve(padded, phase[::-1], mode="valid")), out=envelope
            )
    return envelope


def limit_true_peak(
    audio: np.ndarray,
    sr: float,
    ceiling_dbtp: float,
    *,
    lookahead_ms: float = LIMITER_LOOKAHEAD_MS,
    release_ms: float = LIMITER_RELEASE_MS,
) -> np.ndarray:
    """Lookahead true-peak limiter holding ``ceiling_dbtp``.

    The reduction (dB) needed by :func:`true_peak_envelope` is held for the lookahead
    window ahead of each peak, released with :func:`peak_hold` and averaged over the
    window, so the gain ramps down before a peak and reaches the full reduction on it.

    Args:
        audio: ``(channels, samples)`` float.
        sr: sample rate, Hz.
        ceiling_dbtp: true-peak ceiling, dBTP.
        lookahead_ms, release_ms: lookahead window and release time constant, ms.

    Returns:
        The limited audio, ``(channels, samples)`` float64.
    """
    audio = np.asarray(audio, dtype=np.float64)
    peak_db = 20.0 * np.log10(np.maximum(true_peak_envelope(audio), _TINY))
    excess_db = np.maximum(peak_db - (ceiling_dbtp - LIMITER_MARGIN_DB), 0.0)
    if not excess_db.any():
        return audio
    window = max(round(lookahead_ms * sr / 1000.0), 1) + 1
    # maximum over [n, n + window - 1]: the filter shifted fully to the right
    ahead = maximum_filter1d(
        excess_db, size=window, mode="constant", cval=0.0, origin=-(window // 2)
    )
    released = peak_hold(ahead, smoothing_coefficient(release_ms, sr))
    # mean over [n - window + 1, n]: every sample of it holds at least the reduction at n
    # (before the first sample, the gain is already where the first window needs it)
    padded = np.concatenate([np.full(window - 1, released[0]), released])
    cumulative = np.concatenate([np.zeros(1), np.cumsum(padded)])
    ramped = (cumulative[window:] - cumulative[:-window]) / window
    return audio * db_to_gain(-ramped)


# --- stereo and loudness ------------------------------------------------------------------------


def set_stereo_width(audio: np.ndarray, width: float) -> np.ndarray:
    """Mid/side width: the side signal ``(L - R) / 2`` scaled by ``width``.

    Args:
        audio: ``(channels, samples)``; mono audio is returned unchanged.
        width: 0 gives mono, 1 the input exactly, above 1 a wider image.

    Returns:
        ``(channels, samples)`` float64.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.shape[0] != 2 or width == 1.0:
        return audio
    extra_side = (width - 1.0) * (audio[0] - audio[1]) / 2.0
    return np.stack([audio[0] + extra_side, audio[1] - extra_side])


def gain_to_loudness(audio: np.ndarray, sr: int, target_lufs: float) -> np.ndarray:
    """Scale ``audio`` ``(channels, samples)`` to integrated loudness ``target_lufs`` (LUFS).

    Silence (below the -70 LUFS absolute gate) is returned unchanged.
    """
    loudness = float(measure_loudness(audio, sr)["integrated_lufs"])
    if not (math.isfinite(loudness) and loudness > _MIN_LOUDNESS_LUFS):
        return np.asarray(audio, dtype=np.float64)
    return np.asarray(audio, dtype=np.float64) * db_to_gain(target_lufs - loudness)


def _as_channels(audio: np.ndarray) -> np.ndarray:
    array = np.asarray(audio)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"audio must be a float array, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[0] not in (1, 2) or array.shape[1] == 0:
        raise ValueError(
            f"audio must be (samples,) or (channels, samples) with 1 or 2 channels, "
            f"got shape {np.shape(audio)}"
        )
    if not np.isfinite(array).all():
        raise ValueError("audio contains NaN or infinite samples")
    return array.astype(np.float64)


def render_master(audio: np.ndarray, sr: int, params: MasteringParams) -> np.ndarray:
    """Master ``audio`` with ``params`` (signal flow in the module docstring).

    Args:
        audio: ``(channels, samples)`` (1 or 2 channels) or ``(samples,)`` float, full scale 1.
        sr: sample rate, Hz.
        params: the eight mastering parameters.

    Returns:
        The master, float32, the shape of ``audio``.

    Raises:
        ValueError: on audio that is not finite float mono/stereo, or a bad sample rate.
        mixai_inference.AudioError: on audio the loudness meter rejects (e.g. under 3 s).
    """
    if not (isinstance(sr, int | np.integer) and sr > 0):
        raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
    signal = _as_channels(audio)
    signal = gain_to_loudness(signal, sr, params.target_lufs)
    signal = apply_eq(
        signal, sr, params.eq_low_gain_db, params.eq_mid_gain_db, params.eq_high_gain_db
    )
    signal = compress(signal, sr, params.comp_threshold_db, params.comp_ratio)
    signal = set_stereo_width(signal, params.stereo_width)
    signal = gain_to_loudness(signal, sr, params.target_lufs)
    signal = limit_true_peak(signal, sr, params.limiter_ceiling_dbtp)
    return signal.astype(np.float32).reshape(np.shape(audio))
