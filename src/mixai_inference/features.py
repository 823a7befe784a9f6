"""The MIXAI feature vector of a mix (docs/data_contracts.md §4): one resample, one STFT.

``extract_features(audio, sr)`` returns ``len(FEATURE_NAMES)`` finite float32 values:

* spectral and rhythm families of the mono downmix (mean of the channels), resampled with
  soxr (HQ) to ``FEATURE_CONFIG["sample_rate"]``. Each equals the librosa function of its
  family called with the ``FEATURE_CONFIG`` parameters on that signal (see docs/features.md),
  summarised over frames by mean, std (ddof 0), min and max;
* loudness (BS.1770-4 / EBU R128), true and sample peak, crest factor and stereo image of
  the original-rate multichannel audio.

Names are ``<family>[_<index>]_<stat>``; scalars end in their unit.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mixai_inference import _rhythm, _spectral
from mixai_inference.audio import as_float_audio, resample, to_mono
from mixai_inference.loudness import (
    MOMENTARY_SUBBLOCKS,
    PEAK_FLOOR_DB,
    SUBBLOCK_S,
    measure_validated,
    subblock_bounds,
    subblock_sums,
)

__all__ = ["FEATURE_CONFIG", "FEATURE_NAMES", "FEATURE_SCHEMA_VERSION", "extract_features"]

FEATURE_SCHEMA_VERSION = "2.0"

#: Analysis parameters under librosa's own names (librosa 0.11 defaults unless noted), plus
#: the few parameters of the non-librosa extras (``band_edges_hz``, ``stereo_gate_dbfs``) and
#: of schema 2.0's floors (``noise_floor_db``, ``silence_db``).
FEATURE_CONFIG: MappingProxyType[str, Any] = MappingProxyType(
    {
        "sample_rate": 22050,  # soxr "HQ" resampling of the mono downmix
        "n_fft": 2048,
        "hop_length": 512,
        "win_length": 2048,
        "window": "hann",
        "center": True,
        "pad_mode": "constant",
        "power": 2.0,  # melspectrogram / chroma_stft power spectrum
        "n_mels": 128,  # fmin 0, fmax sr/2, htk False, norm "slaney"
        "n_mfcc": 13,  # DCT norm "ortho"
        "dct_type": 2,
        "lifter": 0,
        "top_db": 80.0,  # power_to_db(ref=1.0, amin=1e-10) for mfcc and onset_strength
        "roll_percent": 0.85,
        "n_bands": 6,  # spectral_contrast: n_bands + 1 = 7 values
        "fmin": 200.0,  # spectral_contrast
        "quantile": 0.02,  # spectral_contrast
        # detail this far (dB of amplitude) under its reference is a resampler's rounding
        # noise, read as the floor: spectral_contrast's magnitudes, floored under their frame's
        # largest; zero_crossing_rate's samples, zero under the signal's largest
        "noise_floor_db": 100.0,
        # frames whose largest magnitude is this far (dB) under the signal's largest are
        # analysed as digital silence by the per-frame shape families (centroid, bandwidth,
        # roll-off, contrast, chroma, zero crossings): a resampler's ringing and rounding there
        # are not the music
        "silence_db": 60.0,
        "n_chroma": 12,
        "tuning": 0.0,  # fixed (librosa would estimate it, slowly, from the spectrum)
        "frame_length": 2048,  # rms and zero_crossing_rate
        "lag": 1,  # onset_strength (spectral flux), max_size 1, aggregate mean
        "max_size": 1,
        "start_bpm": 120.0,  # feature.tempo and beat.beat_track
        "std_bpm": 1.0,
        "ac_size": 8.0,
        "max_tempo": 320.0,
        "tightness": 100.0,  # beat.beat_track
        "band_edges_hz": (250.0, 4000.0),  # band_energy low / mid / high split
        "stereo_gate_dbfs": -70.0,  # 400 ms blocks quieter than this are left out
    }
)

_STATS = ("mean", "std", "min", "max")
_N_CONTRAST = FEATURE_CONFIG["n_bands"] + 1
_BAND_NAMES = ("low", "mid", "high")
_TINY64 = float(np.finfo(np.float64).tiny)


def _names() -> tuple[str, ...]:
    series = [
        "spectral_centroid",
        "spectral_bandwidth",
        "spectral_rolloff",
        "spectral_flux",
        *(f"spectral_contrast_{k}" for k in range(_N_CONTRAST)),
        "zero_crossing_rate",
        "rms",
        "beat_strength",
        *(f"mfcc_{k:02d}" for k in range(FEATURE_CONFIG["n_mfcc"])),
        *(f"chroma_{k:02d}" for k in range(FEATURE_CONFIG["n_chroma"])),
        "stereo_correlation",
        "stereo_width",
    ]
    scalars = [
        "tempo_bpm",
        "loudness_integrated_lufs",
        "loudness_momentary_max_lufs",
        "loudness_short_term_max_lufs",
        "loudness_range_lu",
        "true_peak_dbtp",
        "sample_peak_dbfs",
        "crest_factor_db",
        *(f"band_energy_{band}_db" for band in _BAND_NAMES),
    ]
    return (*(f"{family}_{stat}" for family in series for stat in _STATS), *scalars)


FEATURE_NAMES: tuple[str, ...] = _names()


def _stats(series: np.ndarray) -> np.ndarray:
    """mean, std (ddof 0), min, max over axis 0 -> ``(4, ...)`` float64."""
    values = np.asarray(series, dtype=np.float64)
    return np.stack(
        [values.mean(axis=0), values.std(axis=0), values.min(axis=0), values.max(axis=0)]
    )


def _family_stats(frames: np.ndarray) -> np.ndarray:
    """Stats of ``(n_frames,)`` or of every column of ``(n_frames, n)``, in name order."""
    return _stats(frames).T.ravel()


def _power_db(value: float) -> float:
    """10 log10 of a power ratio, floored at PEAK_FLOOR_DB (-120 dB)."""
    return max(PEAK_FLOOR_DB, 10.0 * math.log10(value)) if value > 0 else PEAK_FLOOR_DB


def _channel_products(chunk: np.ndarray) -> np.ndarray:
    """Per-sample L^2, R^2, L*R of a stereo chunk (x^2 only for mono), float64."""
    channels = chunk.astype(np.float64)
    if len(channels) == 1:
        return np.square(channels)
    left, right = channels
    return np.stack([left * left, right * right, left * right])


def _stereo_image(products: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """L/R correlation and side-energy share of each 400 ms block (hop 100 ms).

    ``products`` are sub-block sums of L^2, R^2, L*R. Correlation is
    ``sum(L R) / sqrt(sum(L^2) sum(R^2))``; width is ``E_side / (E_mid + E_side)`` with
    ``M = (L + R) / 2``, ``S = (L - R) / 2`` (0 = mono, 0.5 = uncorrelated, 1 = opposite
    polarity). Blocks whose mean square (channel average) is below ``stereo_gate_dbfs`` are
    left out; with none left, or for mono input, the result is correlation 1 and width 0.
    """
    mono = np.ones(1), np.zeros(1)
    if len(products) == 1:
        return mono
    left, right, cross = sliding_window_view(products, MOMENTARY_SUBBLOCKS, axis=1).sum(axis=2)
    mean_square = (left + right) / (2.0 * MOMENTARY_SUBBLOCKS * SUBBLOCK_S * sr)
    audible = mean_square > 10.0 ** (FEATURE_CONFIG["stereo_gate_dbfs"] / 10.0)
    if not audible.any():
        return mono
    left, right, cross = left[audible], right[audible], cross[audible]
    correlation = np.clip(cross / np.sqrt(left * right + _TINY64), -1.0, 1.0)
    width = (left + right - 2.0 * cross) / (2.0 * (left + right))
    return correlation, width


def extract_features(audio: Any, sr: Any) -> np.ndarray:
    """The feature vector of a mix, float32 ``(len(FEATURE_NAMES),)``, all finite.

    Parameters
    ----------
    audio : array-like, ``(samples,)`` (mono) or ``(channels, samples)``, 1 or 2 channels
        float (full scale 1.0) or integer PCM; see :func:`mixai_inference.audio.as_float_audio`.
    sr : int
        Sample rate in Hz, 8 000 to 384 000.

    Raises
    ------
    mixai_inference.errors.AudioError
        For rejected input (shape, channels, sample rate, duration 3-600 s, NaN/inf).
    """
    samples, rate = as_float_audio(audio, sr)
    return features_of_resampled(
        samples, rate, resample(to_mono(samples), rate, FEATURE_CONFIG["sample_rate"])
    )


def features_of_resampled(samples: np.ndarray, rate: int, y: np.ndarray) -> np.ndarray:
    """:func:`extract_features` of validated ``samples`` whose mono downmix, resampled to
    ``FEATURE_CONFIG["sample_rate"]``, is ``y`` (float32, 1-D).

    For tools that study how the features depend on the resampled signal
    (``mixai_ml.edge.parity.resampling_sensitivity``); production calls
    :func:`extract_features`.
    """
    cfg = FEATURE_CONFIG
    target_sr = cfg["sample_rate"]
    hop = cfg["hop_length"]

    spectrum = _spectral.analyze_spectrum(
        y,
        target_sr,
        n_fft=cfg["n_fft"],
        hop_length=hop,
        n_mels=cfg["n_mels"],
        n_mfcc=cfg["n_mfcc"],
        n_chroma=cfg["n_chroma"],
        tuning=cfg["tuning"],
        roll_percent=cfg["roll_percent"],
        fmin=cfg["fmin"],
        n_bands=cfg["n_bands"],
        quantile=cfg["quantile"],
        noise_floor_db=cfg["noise_floor_db"],
        silence_db=cfg["silence_db"],
        top_db=cfg["top_db"],
        lag=cfg["lag"],
    )
    onset = spectrum.onset_strength
    zero_crossings = _spectral.zero_crossing_rate(
        y, cfg["frame_length"], hop, _spectral.noise_threshold(y, cfg["noise_floor_db"])
    )
    tempo_bpm = _rhythm.tempo(
        onset,
        target_sr,
        hop,
        start_bpm=cfg["start_bpm"],
        std_bpm=cfg["std_bpm"],
        ac_size=cfg["ac_size"],
        max_tempo=cfg["max_tempo"],
    )
    beats = _rhythm.beat_track(onset, target_sr, hop, tempo_bpm, tightness=cfg["tightness"])
    beat_strength = onset[beats] if len(beats) else np.zeros(1)

    products = subblock_sums(samples, rate, _channel_products)
    correlation, width = _stereo_image(products, rate)
    loudness = measure_validated(samples, rate)
    n_channels = len(samples)
    n_measured = subblock_bounds(samples.shape[1], rate)[-1]
    mean_square = float(products[:n_channels].sum()) / (n_channels * n_measured)
    peak_db = _power_db(_spectral.peak_amplitude(samples) ** 2)

    freq = _spectral.fft_frequencies(target_sr, cfg["n_fft"])
    band_index = np.searchsorted(cfg["band_edges_hz"], freq, side="right")
    band_power = np.bincount(band_index, weights=spectrum.band_power, minlength=3)
    total_power = band_power.sum()

    values = np.concatenate(
        [
            _family_stats(spectrum.centroid),
            _family_stats(spectrum.bandwidth),
            _family_stats(spectrum.rolloff),
            _family_stats(onset),
            _family_stats(spectrum.contrast),
            _family_stats(np.where(spectrum.silent, 0.0, zero_crossings)),
            _family_stats(_spectral.rms(y, cfg["frame_length"], hop)),
            _family_stats(beat_strength),
            _family_stats(spectrum.mfcc),
            _family_stats(spectrum.chroma),
            _family_stats(correlation),
            _family_stats(width),
            [
                tempo_bpm,
                loudness["integrated_lufs"],
                loudness["momentary_max_lufs"],
                loudness["short_term_max_lufs"],
                loudness["loudness_range_lu"],
                loudness["true_peak_dbtp"],
                peak_db,
                peak_db - _power_db(mean_square),
            ],
            [
                _power_db(power / total_power) if total_power > 0 else PEAK_FLOOR_DB
                for power in band_power
            ],
        ]
    )
    return values.astype(np.float32)


def feature_row(values: Any, width: int, what: str) -> np.ndarray:
    """``values`` as a new float32 ``(1, width)`` row: the predictor's check of its input
    (``width``: the length of the feature vector; ``what``: its name in the message). A copy,
    so that the metrics records, made later, may keep it.

    Raises:
        ValueError: If ``values`` is not ``width`` numbers.
    """
    row = np.array(values, dtype=np.float32, order="C")
    if row.shape == (width,):
        return row.reshape(1, width)
    if row.shape != (1, width):
        raise ValueError(
            f"{what} must be {width} numbers (shape ({width},) or (1, {width})), "
            f"got shape {row.shape}"
        )
    return row


def all_finite(row: np.ndarray) -> bool:
    """Whether every value of a float32 ``(1, n)`` row is finite."""
    flat = row[0]
    # x·x is finite iff every value is, unless it overflows: only then check one by one
    return math.isfinite(flat.dot(flat)) or bool(np.isfinite(flat).all())
