"""Oscillators and envelopes of the demo world's synthesiser: band-limited wavetables,
phase accumulation, vectorised ADSR envelopes and panning (all whole-array numpy)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

WAVETABLE_SIZE: Final = 2048

_HARMONIC_ROLLOFF: Final = {
    # wave -> (exponent of 1/k, odd harmonics only, most harmonics)
    "sine": (0.0, False, 1),
    "soft": (2.0, False, 8),
    "square": (1.0, True, 64),
    "saw": (1.0, False, 64),
    "pluck": (1.5, False, 48),
    "glottal": (1.25, False, 96),
}


@lru_cache(maxsize=64)
def wavetable(wave: str, harmonics: int) -> np.ndarray:
    """One cycle ``(WAVETABLE_SIZE,)`` float32 of ``wave`` with at most ``harmonics`` partials.

    Amplitudes fall as ``1 / k**exponent`` (see ``_HARMONIC_ROLLOFF``); peak normalised to 1.
    """
    exponent, odd_only, most = _HARMONIC_ROLLOFF[wave]
    k = np.arange(1, max(min(harmonics, most), 1) + 1)
    amplitudes = np.where(odd_only & (k % 2 == 0), 0.0, 1.0 / k**exponent)
    phase = 2.0 * np.pi * np.arange(WAVETABLE_SIZE) / WAVETABLE_SIZE
    cycle = (amplitudes[:, None] * np.sin(k[:, None] * phase)).sum(axis=0)
    return (cycle / np.abs(cycle).max()).astype(np.float32)


def band_limited_table(wave: str, max_hz: float, sr: int) -> np.ndarray:
    """:func:`wavetable` with as many partials as fit below 0.45 ``sr`` at ``max_hz``.

    The count is rounded down to a power of two (few distinct tables, all cached).
    """
    fitting = max(int(0.45 * sr // max(max_hz, 1.0)), 1)
    return wavetable(wave, 1 << (fitting.bit_length() - 1))


def lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """``table`` (one period) read at phase ``cycles`` (in periods, any real values)."""
    index = (cycles * WAVETABLE_SIZE).astype(np.int64).astype(np.int32)
    index &= WAVETABLE_SIZE - 1
    return table[index]


def oscillate(freq_hz: np.ndarray, sr: int, table: np.ndarray) -> np.ndarray:
    """Wavetable oscillator: ``(samples,)`` float32 at instantaneous frequency ``freq_hz``.

    The phase is the running sum of ``freq_hz / sr`` (float64, so long notes stay in tune).
    """
    return lookup(table, np.cumsum(freq_hz, dtype=np.float64) / sr)


def midi_to_hz(pitch: np.ndarray) -> np.ndarray:
    """Equal-tempered frequency, Hz, of MIDI pitches (A4 = 69 = 440 Hz)."""
    return np.asarray(
        440.0 * np.exp((np.asarray(pitch, dtype=np.float64) - 69.0) * (math.log(2.0) / 12.0))
    )


@dataclass(frozen=True)
class Notes:
    """Note events of one line: onset and duration (s), MIDI pitch ``(notes, voices)``, gain."""

    onset_s: np.ndarray
    duration_s: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray


@dataclass(frozen=True)
class Segments:
    """Which note of a monophonic line sounds at each sample: each lasts until the next onset.

    Attributes:
        first: sample of the first onset (silence before it).
        counts: ``(notes,)`` samples during which each note is the latest one.
        since_s: ``(samples - first,)`` float32 time since the sounding note's onset, s.
    """

    first: int
    counts: np.ndarray
    since_s: np.ndarray

    @classmethod
    def of(cls, onset_s: np.ndarray, samples: int, sr: float) -> Segments:
        """Segments of sorted ``onset_s`` over ``samples`` samples at ``sr`` Hz."""
        starts = np.clip(np.ceil(np.asarray(onset_s) * sr), 0, samples).astype(np.int64)
        counts = np.diff(np.append(starts, samples))
        since = np.arange(starts[0], samples, dtype=np.float32)  # exact below 2**24 samples
        since -= np.repeat(starts.astype(np.float32), counts)
        since *= np.float32(1.0 / sr)
        return cls(int(starts[0]), counts, since)

    def hold(self, values: np.ndarray) -> np.ndarray:
        """Per-note ``values`` ``(notes,)`` held over the samples from :attr:`first`."""
        return np.repeat(values, self.counts)

    def pad(self, active: np.ndarray, before: float = 0.0) -> np.ndarray:
        """A full-length signal: ``before`` until the first onset, then ``active``."""
        return np.concatenate([np.full(self.first, before, dtype=active.dtype), active])


def adsr(
    notes: Notes,
    segments: Segments,
    attack_s: float,
    decay_s: float,
    sustain: float,
    release_s: float,
) -> np.ndarray:
    """Envelope (velocity included) of a monophonic line from :attr:`Segments.first` on.

    Each note attacks linearly, decays exponentially towards ``sustain`` and, after its
    duration, releases exponentially until the next onset cuts it. float32.
    """
    since = segments.since_s
    envelope = np.exp(since * np.float32(-1.0 / decay_s))
    envelope *= np.float32(1.0 - sustain)
    envelope += np.float32(sustain)
    envelope *= np.minimum(since * np.float32(1.0 / attack_s), np.float32(1.0))
    over = since - segments.hold(notes.duration_s.astype(np.float32))
    np.maximum(over, np.float32(0.0), out=over)
    over *= np.float32(-1.0 / release_s)
    envelope *= np.exp(over)
    envelope *= segments.hold(notes.velocity.astype(np.float32))
    return envelope


def pan_gains(position: float) -> tuple[float, float]:
    """Constant-power pan law: left and right gains for ``position`` in [-1, 1]."""
    angle = (position + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def add_panned(
    bus: np.ndarray, signal: np.ndarray, position: float, gain_db: float, start: int = 0
) -> None:
    """Add mono ``signal`` to stereo ``bus`` from sample ``start`` on, panned and scaled."""
    left, right = pan_gains(position)
    gain = 10.0 ** (gain_db / 20.0)
    stop = min(bus.shape[-1], start + signal.size)
    bus[0, start:stop] += (gain * left) * signal[: stop - start]
    bus[1, start:stop] += (gain * right) * signal[: stop - start]
