"""Tempo and beat tracking from an onset-strength envelope, as librosa 0.11 computes them.

``tempo`` reproduces ``librosa.feature.tempo`` (autocorrelation tempogram averaged over
time, weighted by a log-normal prior around ``start_bpm``) and ``beat_track`` reproduces
``librosa.beat.beat_track(onset_envelope=...)`` (Ellis' dynamic-programming tracker),
without numba.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mixai_inference._spectral import hann_window

__all__ = ["beat_track", "tempo", "tempo_frequencies"]

_FRAMES_PER_CHUNK = 4096  # tempogram frames analysed at once (bounded memory)
_TINY64 = float(np.finfo(np.float64).tiny)


def tempo_frequencies(n_bins: int, hop_length: int, sr: int) -> np.ndarray:
    """BPM of each autocorrelation lag (``librosa.tempo_frequencies``); lag 0 is +inf."""
    bpms = np.empty(n_bins)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, n_bins))
    return bpms


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (an FFT size pocketfft handles quickly)."""
    size = n
    while True:
        rest = size
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return size
        size += 1


def _mean_tempogram(onset_envelope: np.ndarray, win_length: int) -> np.ndarray:
    """Time average of ``librosa.feature.tempogram`` (hann window, centred, norm=inf).

    Each frame's autocorrelation is divided by its lag-0 value (its maximum); by linearity the
    mean of the normalised autocorrelations is one inverse FFT of the mean normalised power
    spectrum, so only the forward transforms are computed per frame.
    """
    n = len(onset_envelope)
    half = win_length // 2
    padded = np.pad(onset_envelope, half, mode="linear_ramp", end_values=(0, 0)).astype(np.float64)
    window = hann_window(win_length)
    frames = sliding_window_view(padded, win_length)[:n]
    n_fft = _next_fast_len(2 * win_length - 1)
    mean_power = np.zeros(n_fft // 2 + 1)
    for start in range(0, n, _FRAMES_PER_CHUNK):
        windowed = frames[start : start + _FRAMES_PER_CHUNK] * window
        lag0 = np.einsum("ij,ij->i", windowed, windowed)
        # librosa.util.normalize leaves frames below `tiny` unscaled (they are ~0 anyway)
        scale = np.divide(1.0, lag0, out=np.zeros_like(lag0), where=lag0 >= _TINY64)
        spectrum = np.fft.rfft(windowed, n=n_fft, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        mean_power += np.einsum("t,tf->f", scale, power)  # not BLAS: see _spectral.SparseMel
    mean_acf: np.ndarray = np.fft.irfft(mean_power / n, n=n_fft)[:win_length]
    return mean_acf


def tempo(
    onset_envelope: np.ndarray,
    sr: int,
    hop_length: int,
    *,
    start_bpm: float,
    std_bpm: float,
    ac_size: float,
    max_tempo: float,
) -> float:
    """Global tempo in BPM, as ``librosa.feature.tempo(onset_envelope=..., aggregate=np.mean)``."""
    win_length = int(np.floor(ac_size * sr) // hop_length)
    mean_acf = _mean_tempogram(onset_envelope, win_length)
    bpms = tempo_frequencies(win_length, hop_length, sr)
    log_prior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    log_prior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    best_period = int(np.argmax(np.log1p(1e6 * mean_acf) + log_prior))
    return float(bpms[best_period])


def _local_score(normalized_onsets: np.ndarray, frames_per_beat: int) -> np.ndarray:
    """Onsets smoothed by a Gaussian of +-frames_per_beat (librosa's same-mode convolution)."""
    offsets = np.arange(-frames_per_beat, frames_per_beat + 1)
    window = np.exp(-0.5 * (offsets * 32.0 / frames_per_beat) ** 2).astype(np.float32)
    full = np.convolve(normalized_onsets, window)
    # librosa's loop never uses onset frame 0 (always 0 here: the envelope starts with
    # lag + n_fft // (2 hop) zero frames), so the plain convolution is identical.
    score: np.ndarray = full[frames_per_beat : frames_per_beat + len(normalized_onsets)]
    return score.astype(np.float32)


def _dynamic_program(
    local_score: np.ndarray, frames_per_beat: int, tightness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Backlinks and cumulative scores of librosa's beat DP.

    Frame ``i`` links to the best previous beat ``i - d`` for ``d`` in
    ``[round(fpb / 2), 2 fpb]``, scored ``cumscore[i - d] - tightness * log(d / fpb)**2``
    (ties go to the latest frame, as librosa's descending loop). A frame only depends on
    frames at least ``round(fpb / 2)`` earlier, so blocks of that many frames are solved
    together.
    """
    n = len(local_score)
    min_gap = int(np.round(np.float32(frames_per_beat) / 2))
    gaps = np.arange(min_gap, 2 * frames_per_beat + 1)
    log_fpb = np.float64(np.log(np.float32(frames_per_beat)))  # numba logs the float32 value
    penalty = tightness * (np.log(gaps) - log_fpb) ** 2
    cumscore = np.empty(n, dtype=np.float32)
    backlink = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, min_gap):
        frames = np.arange(start, min(start + min_gap, n))
        candidates = frames[:, np.newaxis] - gaps[np.newaxis, :]
        valid = candidates >= 0
        scores = np.where(valid, cumscore[np.maximum(candidates, 0)] - penalty, -np.inf)
        best = np.argmax(scores, axis=1)
        has_link = valid[np.arange(len(frames)), best]
        best_score = scores[np.arange(len(frames)), best]
        cumscore[frames] = local_score[frames] + np.where(has_link, best_score, 0.0)
        backlink[frames] = np.where(has_link, candidates[np.arange(len(frames)), best], -1)
    # Before the first onset louder than 1 % of the maximum, frames start new paths.
    first_beat = int(np.argmax(local_score >= 0.01 * local_score.max()))
    backlink[:first_beat] = -1
    return backlink, cumscore


def _last_beat(cumscore: np.ndarray) -> int:
    """Last local maximum of ``cumscore`` reaching half the median of the local maxima."""
    is_max = np.zeros(len(cumscore), dtype=bool)
    is_max[1:-1] = (cumscore[1:-1] > cumscore[:-2]) & (cumscore[1:-1] >= cumscore[2:])
    is_max[-1] = cumscore[-1] > cumscore[-2]
    threshold = 0.5 * float(np.median(cumscore[is_max])) if is_max.any() else 0.0
    candidates = np.flatnonzero(is_max & (cumscore >= threshold))
    return int(candidates[-1]) if len(candidates) else len(cumscore) - 1


def _trim_beats(local_score: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Drop leading/trailing beats weaker than half the RMS of the smoothed beat scores."""
    smoothed = np.convolve(local_score[beats], np.hanning(5))[2 : len(local_score) + 2]
    threshold = 0.5 * np.sqrt(np.mean(smoothed**2))
    strong = np.flatnonzero(local_score > threshold)
    if len(strong) == 0:
        return beats[:0]
    return beats[(beats >= strong[0]) & (beats <= strong[-1])]


def beat_track(
    onset_envelope: np.ndarray,
    sr: int,
    hop_length: int,
    bpm: float,
    *,
    tightness: float,
) -> np.ndarray:
    """Beat frames, as ``librosa.beat.beat_track(onset_envelope=..., bpm=bpm, trim=True)``.

    ``onset_envelope`` is float32 ``(n_frames,)``; returns sorted int64 frame indices (none
    for an all-zero envelope).
    """
    if not onset_envelope.any():
        return np.zeros(0, dtype=np.int64)
    frames_per_beat = int(np.round(sr / hop_length * 60.0 / bpm))
    normalized = onset_envelope / (onset_envelope.std(ddof=1) + np.finfo(onset_envelope.dtype).tiny)
    local_score = _local_score(normalized.astype(np.float32), frames_per_beat)
    backlink, cumscore = _dynamic_program(local_score, frames_per_beat, tightness)
    path = []
    frame = _last_beat(cumscore)
    while frame >= 0:
        path.append(frame)
        frame = int(backlink[frame])
    beats = np.array(path[::-1], dtype=np.int64)
    return _trim_beats(local_score, beats)
