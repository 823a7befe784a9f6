"""Programme loudness and true peak: ITU-R BS.1770-4, EBU Tech 3341 and Tech 3342.

All measures work on the original-rate, multichannel audio (mono or stereo, every channel
weighted 1.0 as BS.1770 weights L and R; a mono file is ONE channel, so it reads 3 LU below
the same signal on both channels of a stereo file, as in pyloudnorm and libebur128).

* K-weighting at any sample rate: the two BS.1770 biquads (high shelf + RLB high pass),
  designed by the bilinear transform from the analogue parameters that reproduce the
  standard's 48 kHz coefficients exactly (as libebur128 does).
* The K-weighted mean square is summed over 100 ms sub-blocks; a 400 ms block is 4 of
  them (75 % overlap), a 3 s short-term window 30 of them (10 Hz update). Only complete
  windows are measured.
* Integrated loudness: 400 ms blocks gated at -70 LUFS (absolute) and -10 LU below the
  loudness of the absolute-gated blocks (relative), BS.1770-4 §2.
* Momentary / short-term maximum: the largest 400 ms / 3 s loudness (Tech 3341).
* Loudness range: short-term loudness gated at -70 LUFS and -20 LU relative, then the
  95th minus the 10th percentile (linear interpolation), Tech 3342.
* True peak: 4x oversampling with a 65-tap Kaiser-windowed-sinc polyphase FIR
  (16 taps per phase; flat within 0.01 dB up to 0.35 fs, -0.2 dB at 0.4 fs), BS.1770-4
  Annex 2; the original samples are one of the four phases.

Silence floor: loudness values (integrated, maxima) never go below ``LOUDNESS_FLOOR_LUFS``
(-70 LUFS, the absolute gate: quieter programme is treated as silence); the true peak never
goes below ``PEAK_FLOOR_DB`` (-120 dBTP); the loudness range of programme with fewer than
two gated short-term values is 0 LU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mixai_inference._iir import IIRState, lfilter_chunk
from mixai_inference._spectral import padded_segment, peak_amplitude, read_only
from mixai_inference.audio import as_float_audio

__all__ = [
    "LOUDNESS_FLOOR_LUFS",
    "PEAK_FLOOR_DB",
    "k_weighting_filter",
    "measure_loudness",
    "measure_validated",
    "subblock_bounds",
    "subblock_sums",
    "true_peak_dbtp",
]

LOUDNESS_FLOOR_LUFS = -70.0
PEAK_FLOOR_DB = -120.0
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_PERCENTILES = (10.0, 95.0)
SUBBLOCK_S = 0.1
MOMENTARY_SUBBLOCKS = 4  # 400 ms
SHORT_TERM_SUBBLOCKS = 30  # 3 s
TRUE_PEAK_OVERSAMPLING = 4
TRUE_PEAK_TAPS_PER_PHASE = 16
_TRUE_PEAK_KAISER_BETA = 6.0
_SUBBLOCKS_PER_CHUNK = 100  # 10 s of audio filtered at a time
_PEAK_CHUNK = 1 << 16


def _bilinear_biquad(
    sr: int, f0: float, q: float, shelf_gain_db: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of a 2nd-order high shelf (``shelf_gain_db``) or high pass (``None``).

    Bilinear transform pre-warped at ``f0``; the parameters below and the shelf's ``Vb``
    exponent are libebur128's, which reproduce the BS.1770-4 48 kHz table at 48 kHz.
    """
    k = math.tan(math.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    if shelf_gain_db is None:
        return np.array([1.0, -2.0, 1.0]), a
    vh = 10.0 ** (shelf_gain_db / 20.0)
    vb = vh**0.4996667741545416
    b = np.array(
        [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    )
    return b, a


@lru_cache(maxsize=16)
def k_weighting_filter(sr: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """K-weighting at ``sr``: ``((b, a) of the high-shelf pre-filter, (b, a) of the high pass)``.

    At 48 kHz the two biquads equal the BS.1770-4 table coefficients to ~1e-14; at other
    rates they are the same analogue filters (as pyloudnorm's ``filter_class="DeMan"``).
    The stages are applied one after the other: a single order-4 direct form would be
    ill-conditioned with the high pass's double pole close to z = 1.
    """
    shelf = _bilinear_biquad(sr, 1681.974450955533, 0.7071752369554196, 3.999843853973347)
    high_pass = _bilinear_biquad(sr, 38.13547087602444, 0.5003270373238773, None)
    return tuple((read_only(b), read_only(a)) for b, a in (shelf, high_pass))


def subblock_bounds(n_samples: int, sr: int) -> np.ndarray:
    """Sample index where each complete 100 ms sub-block starts, plus the final end.

    Sub-block ``k`` spans ``[floor(k sr / 10), floor((k + 1) sr / 10))``.
    """
    n_subblocks = (n_samples * 10) // sr
    bounds: np.ndarray = (np.arange(n_subblocks + 1) * sr) // 10
    return bounds


def subblock_sums(
    audio: np.ndarray, sr: int, per_sample: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Sum ``per_sample(chunk)`` over every complete 100 ms sub-block ``(k, n_subblocks)``.

    ``per_sample`` receives consecutive chunks ``(channels, n)`` of ``audio`` (10 s each,
    cut at sub-block bounds, in order, so it may carry filter state) and returns ``(k, n)``
    float64 values per sample. Trailing samples after the last complete sub-block are unused.
    """
    bounds = subblock_bounds(audio.shape[1], sr)
    n_sub = len(bounds) - 1
    parts = []
    for first in range(0, n_sub, _SUBBLOCKS_PER_CHUNK):
        last = min(first + _SUBBLOCKS_PER_CHUNK, n_sub)
        start = bounds[first]
        values = per_sample(audio[:, start : bounds[last]])
        parts.append(np.add.reduceat(values, bounds[first:last] - start, axis=1))
    return np.concatenate(parts, axis=1)


def _kweighted_subblock_energy(audio: np.ndarray, sr: int) -> np.ndarray:
    """Sum of squares of the K-weighted signal per channel and sub-block ``(ch, n_sub)``."""
    stages = [IIRState(b, a, audio.shape[0]) for b, a in k_weighting_filter(sr)]

    def kweighted_square(chunk: np.ndarray) -> np.ndarray:
        filtered = chunk
        for stage in stages:
            filtered = lfilter_chunk(filtered, stage, block=sr // 20)
        return np.square(filtered, out=filtered)

    return subblock_sums(audio, sr, kweighted_square)


def _window_mean_square(subblock_energy: np.ndarray, n_subblocks: int, sr: int) -> np.ndarray:
    """K-weighted mean square of every window of ``n_subblocks`` sub-blocks (hop 100 ms)."""
    summed = sliding_window_view(subblock_energy, n_subblocks).sum(axis=1)
    mean_square: np.ndarray = summed / (n_subblocks * SUBBLOCK_S * sr)
    return mean_square


def _lufs(mean_square: np.ndarray) -> np.ndarray:
    """BS.1770 loudness of K-weighted mean squares (channel weights 1); -inf for 0."""
    with np.errstate(divide="ignore"):
        loudness: np.ndarray = -0.691 + 10.0 * np.log10(mean_square)
    return loudness


def _integrated(block_mean_square: np.ndarray) -> float:
    """BS.1770-4 gated loudness of the 400 ms blocks, or the floor if every block is gated."""
    loudness = _lufs(block_mean_square)
    above_absolute = loudness > ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return LOUDNESS_FLOOR_LUFS
    relative_gate = _lufs(block_mean_square[above_absolute].mean()) + RELATIVE_GATE_LU
    gated = above_absolute & (loudness > relative_gate)
    return float(_lufs(block_mean_square[gated].mean()))


def _loudness_range(short_term: np.ndarray) -> float:
    """EBU Tech 3342 LRA in LU from the short-term loudness series (10 Hz)."""
    above_absolute = short_term[short_term > ABSOLUTE_GATE_LUFS]
    if len(above_absolute) == 0:
        return 0.0
    relative_gate = 10.0 * math.log10(np.mean(10.0 ** (above_absolute / 10.0)))
    gated = above_absolute[above_absolute > relative_gate + LRA_RELATIVE_GATE_LU]
    if len(gated) < 2:
        return 0.0
    low, high = np.percentile(gated, LRA_PERCENTILES)
    return float(high - low)


@lru_cache(maxsize=1)
def true_peak_phases() -> np.ndarray:
    """Polyphase interpolation FIR, ``(oversampling - 1, taps_per_phase)`` float32.

    Kaiser-windowed sinc (beta 6) of length ``oversampling * taps_per_phase + 1`` centred on
    an original sample, so phase 0 is the identity and phases 1..3 give the values 1/4, 2/4
    and 3/4 of a sample later. Row ``p`` applies to ``x[n - taps/2 + 1 : n + taps/2 + 1]``.
    """
    factor, taps = TRUE_PEAK_OVERSAMPLING, TRUE_PEAK_TAPS_PER_PHASE
    n = np.arange(-factor * taps // 2, factor * taps // 2 + 1)
    h = np.sinc(n / factor) * np.kaiser(len(n), _TRUE_PEAK_KAISER_BETA)
    phases = np.empty((factor - 1, taps))
    for p in range(1, factor):
        # value at time m + p/factor = sum_j x[m + j] h[p - factor * j]
        offsets = np.arange(-taps // 2 + 1, taps // 2 + 1)
        phases[p - 1] = h[(p - factor * offsets) + factor * taps // 2]
    return read_only(phases.astype(np.float32))


def true_peak_dbtp(audio: np.ndarray) -> float:
    """Maximum absolute value of the 4x-oversampled signal, in dBTP (float32 ``(ch, n)``)."""
    phases = true_peak_phases()
    taps = phases.shape[1]
    before, after = taps // 2 - 1, taps // 2  # samples each interpolated point depends on
    peak = peak_amplitude(audio)
    for channel in audio:
        for start in range(0, len(channel), _PEAK_CHUNK):
            stop = min(start + _PEAK_CHUNK, len(channel))
            segment = padded_segment(channel, start - before, stop + after)
            n_out = stop - start
            for phase in phases:
                interpolated = phase[0] * segment[:n_out]
                for j in range(1, taps):
                    interpolated += phase[j] * segment[j : j + n_out]
                peak = max(peak, float(interpolated.max()), -float(interpolated.min()))
    return _amplitude_db(peak)


def _amplitude_db(value: float) -> float:
    return max(PEAK_FLOOR_DB, 20.0 * math.log10(value)) if value > 0 else PEAK_FLOOR_DB


def measure_loudness(audio: Any, sr: Any) -> dict[str, float]:
    """Loudness of a programme per ITU-R BS.1770-4 / EBU R128.

    Parameters
    ----------
    audio : array-like, ``(samples,)`` or ``(channels, samples)``, 1 or 2 channels
    sr : int, Hz (8 000 to 384 000)

    Returns
    -------
    dict with float values:
        ``integrated_lufs`` (gated, LUFS), ``momentary_max_lufs`` (400 ms, LUFS),
        ``short_term_max_lufs`` (3 s, LUFS), ``loudness_range_lu`` (LU),
        ``true_peak_dbtp`` (dBTP). Loudness is floored at -70 LUFS, peak at -120 dBTP.

    Raises
    ------
    mixai_inference.errors.AudioError
        For input rejected by :func:`mixai_inference.audio.as_float_audio`.
    """
    samples, rate = as_float_audio(audio, sr)
    return measure_validated(samples, rate)


def measure_validated(audio: np.ndarray, sr: int) -> dict[str, float]:
    """:func:`measure_loudness` of validated float32 ``(channels, samples)`` audio."""
    energy = _kweighted_subblock_energy(audio, sr).sum(axis=0)  # channel weights are 1.0
    blocks = _window_mean_square(energy, MOMENTARY_SUBBLOCKS, sr)
    momentary = _lufs(blocks)
    short_term = _lufs(_window_mean_square(energy, SHORT_TERM_SUBBLOCKS, sr))
    return {
        "integrated_lufs": _integrated(blocks),
        "momentary_max_lufs": max(LOUDNESS_FLOOR_LUFS, float(momentary.max())),
        "short_term_max_lufs": max(LOUDNESS_FLOOR_LUFS, float(short_term.max())),
        "loudness_range_lu": _loudness_range(short_term),
        "true_peak_dbtp": true_peak_dbtp(audio),
    }
