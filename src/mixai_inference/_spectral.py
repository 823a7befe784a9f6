"""Frame-wise spectral and time-domain features of a mono signal, from ONE shared STFT.

Each function reproduces the librosa function named in its docstring (librosa 0.11) in
numpy, with float32 spectra like librosa's. The STFT is computed in chunks of frames so that
memory stays bounded for long files; the per-frame results are the same as librosa's
whole-signal computations, and the few whole-signal steps (the ``top_db`` clipping of
``power_to_db``) are applied after the last chunk.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "SparseMel",
    "SpectralFrames",
    "amplitude_ratio",
    "analyze_spectrum",
    "chroma_filterbank",
    "contrast_bands",
    "dct_matrix",
    "fft_frequencies",
    "hann_window",
    "mel_filterbank",
    "noise_threshold",
    "padded_segment",
    "peak_amplitude",
    "power_to_db",
    "read_only",
    "rms",
    "sparse_mel",
    "stft_chunks",
    "zero_crossing_rate",
]

_FRAMES_PER_CHUNK = 512  # 512 frames of 2048 samples: a few MB of work at a time
_TINY32 = float(np.finfo(np.float32).tiny)  # librosa.util.tiny for float32 spectra


def read_only(array: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only, so that no caller can corrupt the cache."""
    array.flags.writeable = False
    return array


def padded_segment(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``x[start:stop]`` of 1-D ``x`` extended with zeros beyond its ends (a new array).

    Lets chunked code see a zero-padded signal without copying the whole signal.
    """
    segment = np.zeros(stop - start, dtype=x.dtype)
    lo, hi = max(0, start), min(len(x), stop)
    if lo < hi:
        segment[lo - start : hi - start] = x[lo:hi]
    return segment


def peak_amplitude(audio: np.ndarray) -> float:
    """``max(|audio|)`` without a full-size temporary."""
    return max(float(audio.max()), -float(audio.min()))


@lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float64 (``scipy.signal.get_window("hann", n_fft)``)."""
    n = np.arange(n_fft)
    return read_only(0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft))


@lru_cache(maxsize=8)
def fft_frequencies(sr: int, n_fft: int) -> np.ndarray:
    """Frequency in Hz of each of the ``1 + n_fft // 2`` bins (``librosa.fft_frequencies``)."""
    return read_only(np.fft.rfftfreq(n_fft, d=1.0 / sr))


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (``librosa.hz_to_mel``)."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    logstep = np.log(6.4) / 27.0
    mels = hz / f_sp
    log_region = hz >= min_log_hz
    mels[log_region] = min_log_hz / f_sp + np.log(hz[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    hz = f_sp * mels
    log_region = mels >= min_log_mel
    hz[log_region] = 1000.0 * np.exp(logstep * (mels[log_region] - min_log_mel))
    return hz


@lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised triangular mel filters, float32 ``(n_mels, 1 + n_fft // 2)``.

    Equals ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (fmin 0, fmax sr/2,
    ``htk=False``, ``norm="slaney"``).
    """
    fftfreqs = fft_frequencies(sr, n_fft)
    mel_edges = np.linspace(
        _hz_to_mel_slaney(np.array([0.0]))[0],
        _hz_to_mel_slaney(np.array([sr / 2.0]))[0],
        n_mels + 2,
    )
    mel_f = _mel_to_hz_slaney(mel_edges)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, np.newaxis] - fftfreqs[np.newaxis, :]
    lower = -ramps[:-2] / fdiff[:-1, np.newaxis]
    upper = ramps[2:] / fdiff[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return read_only(weights.astype(np.float32))


@dataclass(frozen=True)
class SparseMel:
    """A triangular filterbank stored by bins: bin ``f`` feeds filters ``m[f]`` and ``m[f] + 1``.

    Bins with the same ``m`` are contiguous, so the product with a spectrum is two weighted
    sums over contiguous bin segments (``np.add.reduceat``): no BLAS call, which matters
    because many small multithreaded BLAS calls stall when other processes load the CPU.
    """

    n_mels: int
    segment_starts: np.ndarray  # first bin of each run of equal m
    segment_filters: np.ndarray  # m of each run
    lower_weight: np.ndarray  # (n_bins,) weight of bin f in filter m[f]
    upper_weight: np.ndarray  # (n_bins,) weight of bin f in filter m[f] + 1

    def apply(self, power: np.ndarray) -> np.ndarray:
        """``power @ filterbank.T`` for ``power`` of shape ``(frames, n_bins)``, float32."""
        out = np.zeros((len(power), self.n_mels + 1), dtype=np.float32)
        out[:, self.segment_filters] = np.add.reduceat(
            power * self.lower_weight, self.segment_starts, axis=1
        )
        out[:, self.segment_filters + 1] += np.add.reduceat(
            power * self.upper_weight, self.segment_starts, axis=1
        )
        return out[:, : self.n_mels]


@lru_cache(maxsize=8)
def sparse_mel(sr: int, n_fft: int, n_mels: int) -> SparseMel:
    """:func:`mel_filterbank` in the by-bin form of :class:`SparseMel`."""
    weights = mel_filterbank(sr, n_fft, n_mels)
    n_bins = weights.shape[1]
    first = np.zeros(n_bins, dtype=np.int64)
    lower = np.zeros(n_bins, dtype=np.float32)
    upper = np.zeros(n_bins, dtype=np.float32)
    current = 0
    for f in range(n_bins):
        nonzero = np.flatnonzero(weights[:, f])
        if len(nonzero):
            current = int(nonzero[0])
        if len(nonzero) > 2 or (len(nonzero) == 2 and nonzero[1] != current + 1):
            raise ValueError("mel filters overlap more than their neighbours")
        first[f] = current
        lower[f] = weights[current, f]
        upper[f] = weights[current + 1, f] if current + 1 < n_mels else 0.0
    starts = np.flatnonzero(np.diff(first, prepend=-1))
    return SparseMel(
        n_mels, read_only(starts), read_only(first[starts]), read_only(lower), read_only(upper)
    )


@lru_cache(maxsize=8)
def chroma_filterbank(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """Chroma filters, float32 ``(n_chroma, 1 + n_fft // 2)``, starting at C.

    Equals ``librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning)``
    (Ellis' Gaussian bumps, ``ctroct=5``, ``octwidth=2``, L2-normalised columns, ``base_c``).
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    # The 0 Hz bin gets a made-up position 1.5 octaves below bin 1 (as in librosa).
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    distance = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / binwidthbins[np.newaxis, :]) ** 2)
    weights /= np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    weights *= np.exp(-0.5 * ((frqbins / n_chroma - 5.0) / 2.0) ** 2)[np.newaxis, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return read_only(np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32))


@lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II rows, float32 ``(n_mfcc, n_mels)`` (``scipy.fft.dct(norm="ortho")``)."""
    k = np.arange(n_mfcc)[:, np.newaxis]
    n = np.arange(n_mels)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return read_only(basis.astype(np.float32))


@lru_cache(maxsize=8)
def contrast_bands(
    sr: int, n_fft: int, fmin: float, n_bands: int, quantile: float
) -> tuple[tuple[int, int, int], ...]:
    """Bin ranges of ``librosa.feature.spectral_contrast``'s octave bands.

    Returns one ``(start, stop, n_quantile)`` per band: the band's bins are ``start:stop``
    and its valley/peak are the means of its ``n_quantile`` smallest/largest magnitudes.
    Band edges are 0, fmin, 2 fmin, ... ; each band but the first also takes the bin just
    below it, each band but the last drops its top bin, the last runs to Nyquist, and
    ``n_quantile = max(1, rint(quantile * n_bins_before_dropping))``, all as in librosa.
    """
    freq = fft_frequencies(sr, n_fft)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(edges[:-1] >= 0.5 * sr):
        raise ValueError(f"spectral contrast bands up to {edges[-2]} Hz exceed Nyquist ({sr / 2})")
    bands = []
    for k, (f_low, f_high) in enumerate(itertools.pairwise(edges)):
        idx = np.flatnonzero((freq >= f_low) & (freq <= f_high))
        start = int(idx[0]) - 1 if k > 0 else int(idx[0])
        stop = len(freq) if k == n_bands else int(idx[-1]) + 1
        n_quantile = max(1, int(np.rint(quantile * (stop - start))))
        if k < n_bands:
            stop -= 1
        bands.append((start, stop, n_quantile))
    return tuple(bands)


def power_to_db(power: np.ndarray, top_db: float | None = 80.0) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db)``.

    The ``top_db`` floor is relative to the maximum of the WHOLE array, as in librosa.
    """
    db: np.ndarray = 10.0 * np.log10(np.maximum(power.dtype.type(1e-10), power))
    if top_db is not None:
        np.maximum(db, db.max() - top_db, out=db)
    return db


def stft_chunks(
    y: np.ndarray, n_fft: int, hop_length: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``|librosa.stft(y, n_fft, hop_length, window="hann", center=True, pad_mode="constant")|``
    a few hundred frames at a time (bounded memory, cache-sized work).

    Yields ``(start, stop, frames, magnitude)``: frame indices ``start:stop``, the raw
    (unwindowed) samples of those frames ``(n, n_fft)`` and their float32 magnitude spectra
    ``(n, 1 + n_fft // 2)``; there are ``1 + len(y) // hop_length`` frames in all.
    """
    window = hann_window(n_fft)
    n_frames = 1 + len(y) // hop_length
    for start in range(0, n_frames, _FRAMES_PER_CHUNK):
        stop = min(start + _FRAMES_PER_CHUNK, n_frames)
        first = start * hop_length - n_fft // 2  # frame t starts at t * hop - n_fft // 2
        segment = padded_segment(y, first, first + (stop - start - 1) * hop_length + n_fft)
        frames = sliding_window_view(segment, n_fft)[::hop_length]
        # float64 FFT, float32 magnitude: librosa's float64 window makes its FFT float64 too,
        # which matters where magnitudes sit ~140 dB below the peak (contrast valleys).
        magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
        yield start, stop, frames, magnitude


@dataclass(frozen=True)
class SpectralFrames:
    """Per-frame series of the shared STFT (``n_frames = 1 + len(y) // hop_length``).

    Attributes hold the librosa equivalents, transposed to ``(n_frames, ...)``:
    centroid, bandwidth, rolloff in Hz ``(n_frames,)``; contrast in dB ``(n_frames, n_bands+1)``;
    mfcc ``(n_frames, n_mfcc)``; chroma ``(n_frames, n_chroma)``; onset_strength (spectral
    flux) ``(n_frames,)``; band_power: total power per bin summed over frames ``(n_bins,)``.
    """

    centroid: np.ndarray
    bandwidth: np.ndarray
    rolloff: np.ndarray
    contrast: np.ndarray
    mfcc: np.ndarray
    chroma: np.ndarray
    onset_strength: np.ndarray
    band_power: np.ndarray
    silent: np.ndarray
    """``(n_frames,)`` bool: the frames analysed as digital silence."""


def analyze_spectrum(
    y: np.ndarray,
    sr: int,
    *,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    n_mfcc: int,
    n_chroma: int,
    tuning: float,
    roll_percent: float,
    fmin: float,
    n_bands: int,
    quantile: float,
    noise_floor_db: float,
    silence_db: float,
    top_db: float,
    lag: int,
) -> SpectralFrames:
    """All STFT-based families of mono ``y`` (float32) from one centred, zero-padded STFT.

    Reproduces, with ``S = |librosa.stft(y, n_fft, hop_length, window="hann", center=True,
    pad_mode="constant")|``: ``spectral_centroid``, ``spectral_bandwidth`` (p=2, norm),
    ``spectral_rolloff``, ``spectral_contrast`` (linear=False, of ``S`` floored at
    ``noise_floor_db`` below each frame's largest magnitude), ``mfcc`` (from
    ``power_to_db(melspectrogram)``, dct type 2 ortho, no lifter), ``chroma_stft``
    (norm=inf) and ``onset.onset_strength`` (mean over mel bands, ``max_size=1``,
    ``center=True``), all from librosa.feature / librosa.onset. Frames whose largest magnitude
    is ``silence_db`` under the largest of all (``silent``) give centroid, bandwidth, roll-off,
    contrast and chroma as an all-zero frame does.
    """
    freq = fft_frequencies(sr, n_fft)
    mel_bank = sparse_mel(sr, n_fft, n_mels)
    chroma_bank = chroma_filterbank(sr, n_fft, n_chroma, tuning)
    bands = contrast_bands(sr, n_fft, fmin, n_bands, quantile)
    floor_ratio = amplitude_ratio(noise_floor_db)
    # [1, f, f^2] moments in float64: the bandwidth is sqrt(E[f^2] - E[f]^2).
    moment_basis = np.stack([np.ones_like(freq), freq, freq**2])

    n_frames = 1 + len(y) // hop_length
    n_bins = len(freq)

    centroid = np.empty(n_frames)
    bandwidth = np.empty(n_frames)
    rolloff = np.empty(n_frames)
    valley = np.empty((n_frames, len(bands)))
    peak = np.empty((n_frames, len(bands)))
    frame_peak = np.empty(n_frames, dtype=np.float32)
    mel = np.empty((n_frames, n_mels), dtype=np.float32)
    chroma = np.empty((n_frames, n_chroma), dtype=np.float32)
    band_power = np.zeros(n_bins)

    for start, stop, _, magnitude in stft_chunks(y, n_fft, hop_length):
        power = np.square(magnitude)

        # einsum, not BLAS (see SparseMel); float64 accumulation
        moments = np.einsum("tf,kf->tk", magnitude, moment_basis)
        total = moments[:, 0]
        total[total < _TINY32] = 1.0  # librosa.util.normalize leaves silent frames at 0
        mean_f = moments[:, 1] / total
        centroid[start:stop] = mean_f
        bandwidth[start:stop] = np.sqrt(np.maximum(moments[:, 2] / total - mean_f**2, 0.0))

        cumulative = np.cumsum(magnitude, axis=1)
        threshold = roll_percent * cumulative[:, -1:]
        rolloff[start:stop] = freq[np.count_nonzero(cumulative < threshold, axis=1)]

        frame_peak[start:stop] = magnitude.max(axis=1)
        floor = frame_peak[start:stop, np.newaxis] * floor_ratio
        for k, (lo, hi, q) in enumerate(bands):
            ordered = np.sort(magnitude[:, lo:hi], axis=1)
            valley[start:stop, k] = np.maximum(ordered[:, :q], floor).mean(axis=1)
            peak[start:stop, k] = np.maximum(ordered[:, -q:], floor).mean(axis=1)

        mel[start:stop] = mel_bank.apply(power)
        chroma[start:stop] = np.einsum("tf,cf->tc", power, chroma_bank)
        band_power += power.sum(axis=0, dtype=np.float64)

    silent = frame_peak < frame_peak.max(initial=0.0) * amplitude_ratio(silence_db)
    for values in (centroid, bandwidth, rolloff, valley, peak, chroma):
        values[silent] = 0.0
    log_mel = power_to_db(mel, top_db)
    mfcc = np.einsum("tm,km->tk", log_mel, dct_matrix(n_mfcc, n_mels))

    # onset_strength: mean positive log-mel increase over `lag` frames, shifted right by
    # lag + n_fft // (2 hop) frames to undo the centring, truncated to n_frames.
    flux = np.maximum(0.0, log_mel[lag:] - log_mel[:-lag]).mean(axis=1)
    onset_strength = np.zeros(n_frames, dtype=np.float32)
    shift = lag + n_fft // (2 * hop_length)
    onset_strength[shift:] = flux[: max(0, n_frames - shift)]

    chroma_max = chroma.max(axis=1, keepdims=True).astype(np.float64)
    chroma_max[chroma_max < _TINY32] = 1.0
    chroma_norm = (chroma / chroma_max).astype(np.float32)

    contrast = power_to_db(peak, top_db) - power_to_db(valley, top_db)
    return SpectralFrames(
        centroid=centroid,
        bandwidth=bandwidth,
        rolloff=rolloff,
        contrast=contrast,
        mfcc=mfcc,
        chroma=chroma_norm,
        onset_strength=onset_strength,
        band_power=band_power,
        silent=silent,
    )


def _frame_totals(hop_totals: np.ndarray, n_frames: int, frame_length: int, hop: int) -> np.ndarray:
    """Per-frame sums of centred frames from per-hop sums of the unpadded signal.

    ``hop_totals[b]`` sums samples ``[b hop, (b + 1) hop)``; frame ``t`` of the signal padded
    by ``frame_length // 2`` on each side covers hops ``t - lead .. t - lead + frame_length /
    hop - 1`` with ``lead = frame_length // 2 / hop`` (both must divide exactly). Summing hops
    avoids building the padded signal and its frames (memory at long durations).
    """
    hops_per_frame, rest = divmod(frame_length, hop)
    lead, rest_lead = divmod(frame_length // 2, hop)
    if rest or rest_lead:
        raise ValueError("frame_length and frame_length // 2 must be multiples of hop_length")
    padded = np.zeros(n_frames + hops_per_frame - 1)
    n = min(len(hop_totals), len(padded) - lead)
    padded[lead : lead + n] = hop_totals[:n]
    totals: np.ndarray = sliding_window_view(padded, hops_per_frame).sum(axis=1)
    return totals


def _hop_blocks(values: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as whole hops ``(n, hop)`` and the remaining partial hop."""
    n_full = len(values) // hop
    return values[: n_full * hop].reshape(n_full, hop), values[n_full * hop :]


def rms(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length, hop_length, center=True, pad_mode="constant")``.

    Returns ``(1 + len(y) // hop_length,)`` float64.
    """
    blocks, tail = _hop_blocks(y, hop_length)
    energy = np.append(np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64), np.dot(tail, tail))
    frame_energy = _frame_totals(energy, 1 + len(y) // hop_length, frame_length, hop_length)
    result: np.ndarray = np.sqrt(frame_energy / frame_length)
    return result


def amplitude_ratio(db: float) -> np.float32:
    """``db`` under as an amplitude ratio, ``10 ** (-db / 20)``, in float32 (as the feature
    graph has it)."""
    return np.float32(10.0 ** (-db / 20.0))


def noise_threshold(y: np.ndarray, floor_db: float) -> float:
    """The level ``floor_db`` under the largest ``|y|`` (a float32 value)."""
    return float(np.float32(np.abs(y).max(initial=0.0)) * amplitude_ratio(floor_db))


def zero_crossing_rate(
    y: np.ndarray, frame_length: int, hop_length: int, threshold: float = 1e-10
) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length, hop_length, center=True)``.

    Samples with ``|y| <= threshold`` count as zero (positive); the rate is the number of sign
    changes between consecutive samples of a frame / frame_length. The edge padding adds no
    crossings, so only pairs inside ``y`` are counted. Returns ``(1 + len(y) // hop_length,)``.
    """
    negative = y < -threshold
    crossing = np.zeros(len(y), dtype=bool)  # crossing[i]: between samples i - 1 and i
    np.not_equal(negative[1:], negative[:-1], out=crossing[1:])
    blocks, tail = _hop_blocks(crossing, hop_length)
    counts = np.append(np.count_nonzero(blocks, axis=1), np.count_nonzero(tail))
    n_frames = 1 + len(y) // hop_length
    frame_counts = _frame_totals(counts, n_frames, frame_length, hop_length)
    # a frame's first sample pairs with the sample before the frame: not its crossing
    first = (np.arange(n_frames) * hop_length) - frame_length // 2
    inside = (first > 0) & (first < len(y))
    frame_counts[inside] -= crossing[first[inside]]
    result: np.ndarray = frame_counts / frame_length
    return result
