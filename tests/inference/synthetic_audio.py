"""Synthetic signals with known properties, for the feature tests and benchmarks/bench_features.py.

Every generator is deterministic (seeded) and returns float32 ``(channels, samples)`` unless
it says otherwise.
"""

from __future__ import annotations

import numpy as np


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def sine(
    freq: float,
    sr: int,
    duration_s: float,
    peak_dbfs: float = -6.0,
    phase_deg: float = 0.0,
    channels: int = 2,
    fade_s: float = 0.01,
) -> np.ndarray:
    """A sine of peak level ``peak_dbfs`` on every channel, with raised-cosine fades.

    The fades keep the start and end free of steps, whose band-limited reconstruction would
    overshoot the steady sine's true peak.
    """
    t = np.arange(round(sr * duration_s)) / sr
    wave = db_to_amplitude(peak_dbfs) * np.sin(2 * np.pi * freq * t + np.deg2rad(phase_deg))
    n_fade = round(sr * fade_s)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
    wave[:n_fade] *= fade
    wave[len(wave) - n_fade :] *= fade[::-1]
    return np.tile(wave.astype(np.float32), (channels, 1))


def tone_sequence(
    segments: list[tuple[float, float]], sr: int, freq: float = 1000.0, channels: int = 2
) -> np.ndarray:
    """Consecutive ``(peak_dbfs, duration_s)`` sine segments with a continuous phase.

    This is how EBU Tech 3341/3342 describe their test signals ("1 kHz sine at -23 dBFS").
    """
    lengths = [round(sr * duration) for _, duration in segments]
    gains = np.concatenate(
        [
            np.full(n, db_to_amplitude(level))
            for (level, _), n in zip(segments, lengths, strict=True)
        ]
    )
    t = np.arange(len(gains)) / sr
    wave = (gains * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))


def chirp(sr: int, duration_s: float, f0: float = 60.0, f1: float = 10000.0) -> np.ndarray:
    """Linear sweep from f0 to f1 Hz, stereo, peak -6 dBFS."""
    t = np.arange(round(sr * duration_s)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration_s) * t**2)
    return np.tile((0.5 * np.sin(phase)).astype(np.float32), (2, 1))


def noise(sr: int, duration_s: float, rms_dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    """Independent white Gaussian noise on two channels."""
    rng = np.random.default_rng(seed)
    n = round(sr * duration_s)
    return (db_to_amplitude(rms_dbfs) * rng.standard_normal((2, n))).astype(np.float32)


def _decaying(sr: int, length_s: float, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(round(sr * length_s)) / (sr * tau_s))


def _place(track: np.ndarray, sound: np.ndarray, onsets_s: np.ndarray, sr: int) -> None:
    for onset in onsets_s:
        start = round(onset * sr)
        stop = min(len(track), start + len(sound))
        track[start:stop] += sound[: stop - start]


def music(sr: int, duration_s: float, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    """A stereo groove: kick on beats 1 and 3, snare on 2 and 4, eighth-note hats, a bass
    line and sustained triads with harmonics, panned differently. Peak about -3 dBFS."""
    rng = np.random.default_rng(seed)
    n = round(sr * duration_s)
    beat = 60.0 / bpm
    beats = np.arange(0.0, duration_s - 0.3, beat)
    t_kick = np.arange(round(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t_kick + 60 * 0.03 * (1 - np.exp(-t_kick / 0.03))))
    kick *= _decaying(sr, 0.25, 0.06)
    snare = rng.standard_normal(round(0.2 * sr)) * _decaying(sr, 0.2, 0.04)
    hat = np.diff(rng.standard_normal(round(0.05 * sr) + 1)) * _decaying(sr, 0.05, 0.01)
    drums = np.zeros(n)
    _place(drums, 0.9 * kick, beats[0::2], sr)
    _place(drums, 0.4 * snare, beats[1::2], sr)
    _place(drums, 0.15 * hat, np.arange(0.0, duration_s - 0.1, beat / 2), sr)

    bass = np.zeros(n)
    chords = np.zeros(n)
    bar = 4 * beat
    for k, start in enumerate(np.arange(0.0, duration_s, bar)):
        root = 40 + [0, 5, 7, 3][k % 4]
        length = min(bar, duration_s - start)
        t = np.arange(round(length * sr)) / sr
        first = round(start * sr)
        for step in range(4):  # a bass note per beat
            t_note = t[: round(beat * sr)]
            note = root + [0, 0, 7, 12][step]
            tone = np.sin(2 * np.pi * 440 * 2 ** ((note - 69) / 12) * t_note)
            tone *= np.exp(-t_note / 0.3)
            offset = first + round(step * beat * sr)
            stop = min(n, offset + len(tone))
            if offset < n:
                bass[offset:stop] += 0.35 * tone[: stop - offset]
        for interval in (12, 16, 19):
            f = 440 * 2 ** ((root + interval - 69) / 12)
            voice = sum(np.sin(2 * np.pi * f * h * t) / h**1.5 for h in range(1, 6))
            stop = min(n, first + len(t))
            chords[first:stop] += 0.06 * voice[: stop - first] * (1 - np.exp(-t / 0.05))
    left = drums + bass + 1.2 * chords
    right = 0.9 * drums + bass + 0.7 * chords + 0.02 * rng.standard_normal(n)
    mix = np.stack([left, right])
    return (mix * (0.7 / np.abs(mix).max())).astype(np.float32)


def click_track(bpm: float, sr: int, duration_s: float) -> np.ndarray:
    """Mono (1-D) 1 kHz clicks, one per beat (as ``librosa.clicks``)."""
    click = np.sin(2 * np.pi * 1000 * np.arange(round(0.1 * sr)) / sr) * _decaying(sr, 0.1, 0.01)
    track = np.zeros(round(sr * duration_s))
    _place(track, 0.8 * click, np.arange(0.0, duration_s - 0.1, 60.0 / bpm), sr)
    return track.astype(np.float32)


def vocal_pair(
    sr: int, duration_s: float, offset_ms: float, seed: int = 0, bpm: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(vocal_file, instrumental)`` mono stems sharing a syncopated onset pattern.

    The instrumental has kick/snare on the beats and a plucked instrument doubling the
    vocal rhythm; the vocal has harmonic notes with a 10 ms attack and vibrato. The vocal
    file is shifted so that ``vocal_file[t]`` belongs at instrumental time ``t + offset_ms``.
    """
    rng = np.random.default_rng(seed)
    n = round(sr * duration_s)
    instrumental = np.zeros(n)
    vocal = np.zeros(n)
    beat = 60.0 / bpm
    beats = np.arange(0.5, duration_s - 1.0, beat)
    _place(
        instrumental,
        0.6 * np.sin(2 * np.pi * 55 * np.arange(round(0.15 * sr)) / sr) * _decaying(sr, 0.15, 0.04),
        beats[0::2],
        sr,
    )
    _place(
        instrumental,
        0.3 * rng.standard_normal(round(0.15 * sr)) * _decaying(sr, 0.15, 0.025),
        beats[1::2],
        sr,
    )
    sixteenths = np.arange(0.5, duration_s - 1.0, beat / 4)
    onsets = sixteenths[rng.random(len(sixteenths)) < 0.25]
    for onset in onsets:
        t = np.arange(round(0.5 * sr)) / sr
        f_pluck = 110 * 2 ** (rng.integers(0, 12) / 12)
        pluck = sum(0.7**h * np.sin(2 * np.pi * f_pluck * h * t) for h in range(1, 10))
        _place(instrumental, 0.25 * pluck * np.exp(-t * 8), np.array([onset]), sr)
        t = np.arange(round(rng.uniform(0.15, 0.4) * sr)) / sr
        f_voice = 220 * 2 ** (rng.integers(0, 12) / 12)
        vibrato = 0.3 * np.sin(2 * np.pi * 5 * t)
        voice = sum(np.sin(2 * np.pi * f_voice * h * t + vibrato) / h**1.5 for h in range(1, 8))
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * 3)
        _place(vocal, 0.3 * voice * envelope, np.array([onset]), sr)
    return as_take(vocal, offset_ms, sr), instrumental.astype(np.float32)


def as_take(aligned_vocal: np.ndarray, offset_ms: float, sr: int) -> np.ndarray:
    """The vocal file of a take whose ``file[t]`` belongs at instrumental time ``t + offset``."""
    shift = round(offset_ms / 1000 * sr)
    if shift >= 0:
        return aligned_vocal[shift:].astype(np.float32)
    return np.concatenate([np.zeros(-shift), aligned_vocal]).astype(np.float32)
