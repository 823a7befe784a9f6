"""Drum hits of the demo world's synthesiser: short synthesised sounds placed on onsets."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt


def _decay(length_s: float, tau_s: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(int(length_s * sr)) / (tau_s * sr))


@lru_cache(maxsize=64)
def bandpass(band: tuple[float, float], sr: int) -> np.ndarray:
    """Second-order Butterworth band-pass sections of ``band`` (Hz), capped below Nyquist."""
    return np.asarray(
        butter(2, [band[0], min(band[1], 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    )


def drum_sound(kind: str, kit: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One hit ``(samples,)`` float64 of ``kind`` (kick, snare, hat or crash) from ``kit``."""
    tone = float(rng.uniform(0.9, 1.1))
    if kind == "kick":
        start, end, tau, click = {
            "acoustic": (110.0, 50.0, 0.18, 0.3),
            "electronic": (150.0, 45.0, 0.33, 0.15),
            "brush": (90.0, 55.0, 0.12, 0.05),
            "shaker": (90.0, 55.0, 0.12, 0.05),
        }[kit]
        body = _decay(0.45, tau, sr)
        sweep = tone * (end + (start - end) * _decay(0.45, 0.04, sr))
        hit = np.sin(2.0 * np.pi * np.cumsum(sweep) / sr) * body
        hit[: int(0.004 * sr)] += click * rng.standard_normal(int(0.004 * sr))
        return np.asarray(hit)
    noise_length, tau, band = {
        ("snare", "acoustic"): (0.25, 0.09, (900.0, 7000.0)),
        ("snare", "electronic"): (0.3, 0.07, (700.0, 5000.0)),
        ("snare", "brush"): (0.35, 0.12, (2000.0, 9000.0)),
        ("snare", "shaker"): (0.35, 0.12, (2000.0, 9000.0)),
        ("hat", "acoustic"): (0.12, 0.035, (6000.0, 16000.0)),
        ("hat", "electronic"): (0.1, 0.03, (7000.0, 18000.0)),
        ("hat", "brush"): (0.2, 0.06, (4000.0, 12000.0)),
        ("hat", "shaker"): (0.12, 0.04, (3500.0, 11000.0)),
        ("crash", "acoustic"): (1.0, 0.3, (3000.0, 14000.0)),
        ("crash", "electronic"): (0.8, 0.25, (4000.0, 16000.0)),
        ("crash", "brush"): (1.2, 0.4, (2500.0, 10000.0)),
        ("crash", "shaker"): (0.8, 0.3, (3000.0, 12000.0)),
    }[(kind, kit)]
    sos = bandpass(band, sr)
    envelope = _decay(noise_length, tau, sr)
    if kit in ("brush", "shaker"):  # swept rather than struck: a soft attack
        envelope *= np.minimum(np.arange(envelope.size) / (0.012 * sr), 1.0)
    hit = sosfilt(sos, rng.standard_normal(envelope.size)) * envelope
    if kind == "snare" and kit in ("acoustic", "electronic"):
        hit += (
            0.5
            * np.sin(2.0 * np.pi * 185.0 * tone * np.arange(envelope.size) / sr)
            * _decay(noise_length, 0.05, sr)
        )
    return np.asarray(hit / np.abs(hit).max())


def place_hits(
    samples: int, sound: np.ndarray, onsets: np.ndarray, gains: np.ndarray
) -> np.ndarray:
    """Sum copies of ``sound`` starting at ``onsets`` (sample indices) with ``gains``; float32."""
    out = np.zeros(samples, dtype=np.float32)
    for onset, gain in zip(onsets, gains, strict=True):
        if 0 <= onset < samples:
            end = min(onset + sound.size, samples)
            out[onset:end] += gain * sound[: end - onset]
    return out
