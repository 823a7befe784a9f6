"""librosa computing each feature family the way docs/features.md defines it (test oracle only)."""

from __future__ import annotations

import librosa
import numpy as np

from mixai_inference import FEATURE_CONFIG


def _columns(frames: np.ndarray) -> np.ndarray:
    """``(n_frames, n)`` float64 from librosa's ``(n, n_frames)`` or ``(n_frames,)``."""
    values = np.asarray(frames, dtype=np.float64)
    return values.T if values.ndim == 2 else values[:, np.newaxis]


def floored(magnitude: np.ndarray, floor_db: float) -> np.ndarray:
    """A magnitude spectrogram ``(bins, frames)`` floored at ``floor_db`` below each frame's
    largest value: what ``spectral_contrast`` reads (docs/features.md)."""
    return np.maximum(magnitude, magnitude.max(axis=0, keepdims=True) * 10.0 ** (-floor_db / 20))


def librosa_families(audio: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Frame series ``(n_frames, n)`` of each family (and ``tempo_bpm``) from librosa."""
    cfg = FEATURE_CONFIG
    rate = cfg["sample_rate"]
    y = librosa.resample(librosa.to_mono(audio), orig_sr=sr, target_sr=rate, res_type="soxr_hq")
    stft = {
        key: cfg[key]
        for key in ("n_fft", "hop_length", "win_length", "window", "center", "pad_mode")
    }
    onset_envelope = librosa.onset.onset_strength(
        y=y, sr=rate, lag=cfg["lag"], max_size=cfg["max_size"], n_mels=cfg["n_mels"], **stft
    )
    rhythm = {"sr": rate, "hop_length": cfg["hop_length"], "start_bpm": cfg["start_bpm"]}
    tempo = librosa.feature.tempo(
        onset_envelope=onset_envelope,
        std_bpm=cfg["std_bpm"],
        ac_size=cfg["ac_size"],
        max_tempo=cfg["max_tempo"],
        **rhythm,
    )
    _, beats = librosa.beat.beat_track(
        onset_envelope=onset_envelope, tightness=cfg["tightness"], trim=True, **rhythm
    )
    frames = {
        "spectral_centroid": librosa.feature.spectral_centroid(y=y, sr=rate, **stft),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=rate, **stft),
        "spectral_rolloff": librosa.feature.spectral_rolloff(
            y=y, sr=rate, roll_percent=cfg["roll_percent"], **stft
        ),
        "spectral_flux": onset_envelope,
        "spectral_contrast": librosa.feature.spectral_contrast(
            S=floored(np.abs(librosa.stft(y, **stft)), cfg["noise_floor_db"]),
            sr=rate,
            fmin=cfg["fmin"],
            n_bands=cfg["n_bands"],
            quantile=cfg["quantile"],
            n_fft=cfg["n_fft"],
            hop_length=cfg["hop_length"],
        ),
        "zero_crossing_rate": librosa.feature.zero_crossing_rate(
            y,
            frame_length=cfg["frame_length"],
            hop_length=cfg["hop_length"],
            center=cfg["center"],
            threshold=np.abs(y).max() * 10.0 ** (-cfg["noise_floor_db"] / 20),
        ),
        "rms": librosa.feature.rms(
            y=y,
            frame_length=cfg["frame_length"],
            hop_length=cfg["hop_length"],
            center=cfg["center"],
            pad_mode=cfg["pad_mode"],
        ),
        "beat_strength": onset_envelope[beats],
        "mfcc": librosa.feature.mfcc(
            y=y,
            sr=rate,
            n_mfcc=cfg["n_mfcc"],
            dct_type=cfg["dct_type"],
            lifter=cfg["lifter"],
            n_mels=cfg["n_mels"],
            power=cfg["power"],
            **stft,
        ),
        "chroma": librosa.feature.chroma_stft(
            y=y, sr=rate, n_chroma=cfg["n_chroma"], tuning=cfg["tuning"], **stft
        ),
    }
    families = {name: _columns(values) for name, values in frames.items()}
    families["tempo_bpm"] = np.atleast_2d(tempo)
    return families
