"""Procedural, vectorised synthesis of a song's stems in one of the six styles.

A song is a short 4/4 arrangement (drums, bass, chords, an optional lead) and a sung
line. Everything is rendered with whole-array numpy operations: pitched lines by
phase accumulation and band-limited wavetable lookup under vectorised ADSR
envelopes, drums by placing short synthesized hits, the voice as a glottal-like
harmonic source with glide and vibrato through two crossfaded formant filter banks.
Python loops run over notes and hits only, never over samples.

All random draws come from the ``numpy.random.Generator`` passed in, so a song is
a pure function of its :class:`SongSpec` and the generator's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from mixai_ml.dsp.mastering import db_to_gain, peak
from mixai_ml.simulation.drums import bandpass, drum_sound, place_hits
from mixai_ml.simulation.oscillators import (
    Notes,
    Segments,
    add_panned,
    adsr,
    band_limited_table,
    lookup,
    midi_to_hz,
    oscillate,
    wavetable,
)
from mixai_ml.simulation.styles import NEIGHBOURS, STYLES, Style, pattern

STEPS_PER_BAR: Final = 16

_CHORD_SOUNDS: Final = {
    # sound -> (wave, attack s, decay s, sustain, release s, voices, detune cents)
    "piano": ("pluck", 0.004, 0.6, 0.2, 0.25, 4, 0.0),
    "pluck": ("saw", 0.003, 0.25, 0.1, 0.08, 3, 0.0),
    "power": ("saw", 0.005, 0.5, 0.7, 0.08, 3, 5.0),
    "supersaw": ("saw", 0.01, 0.3, 0.6, 0.15, 3, 14.0),
    "guitar": ("pluck", 0.003, 0.45, 0.12, 0.2, 4, 0.0),
}
_BASS_ENVELOPES: Final = {
    # wave -> (attack s, decay s, sustain, release s)
    "sine": (0.01, 0.5, 0.7, 0.12),
    "pluck": (0.004, 0.18, 0.3, 0.06),
    "saw": (0.004, 0.25, 0.6, 0.05),
}
_PROGRESSIONS: Final = (
    # (semitones above the tonic, minor?) per bar, in a major key
    ((0, False), (7, False), (9, True), (5, False)),
    ((9, True), (5, False), (0, False), (7, False)),
    ((0, False), (9, True), (5, False), (7, False)),
    ((0, False), (5, False), (7, False), (5, False)),
    ((2, True), (7, False), (0, False), (9, True)),
)
_PENTATONIC: Final = np.array([0, 2, 4, 7, 9])
_VOWELS: Final = {
    # vowel -> formant frequencies F1, F2, F3 (Hz), after Peterson & Barney (1952)
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (390.0, 1990.0, 2550.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (440.0, 1020.0, 2240.0),
}
_FORMANT_GAINS_DB: Final = (12.0, 9.0, 6.0)
_FORMANT_Q: Final = 5.0
CONTROL_STEP: Final = 32
"""Samples per step of the voice's pitch and vowel curves (0.7 ms at 44.1 kHz)."""
BORROW_PROBABILITY: Final = 0.3
"""Chance that a song's drums, chords or tempo come from a neighbouring style."""


@dataclass(frozen=True)
class SongSpec:
    """The musical decisions of one song.

    Attributes:
        style: preset name (a key of :data:`STYLES`).
        drums_style: the style whose drum kit and patterns play (usually ``style``).
        chords_style: the style whose chord sound and rhythm play (usually ``style``).
        duration_s: length of the song, s.
        tempo_bpm: tempo, beats per minute.
        tonic: MIDI note of the key's tonic (major key).
        progression: index into the chord progressions (one chord per bar).
        loop: whether one bar of drums repeats unchanged (strongly periodic music).
        lead: whether a lead line plays.
        brightness_hz: cutoff of the low-pass on the pitched instruments, Hz.
        vocal_low: lowest MIDI note of the singer's range (the range spans 15 semitones).
        vocal_coverage: share of the song with singing, 0..1.
        timing_jitter_ms: standard deviation of the singer's onset timing, ms.
        intro_s: the band fades in over this long at the start, s.
        vowels: the two vowels the singer alternates between.
    """

    style: str
    drums_style: str
    chords_style: str
    duration_s: float
    tempo_bpm: float
    tonic: int
    progression: int
    loop: bool
    lead: bool
    brightness_hz: float
    vocal_low: int
    vocal_coverage: float
    timing_jitter_ms: float
    intro_s: float
    vowels: tuple[str, str]


@dataclass(frozen=True)
class Song:
    """The stems of one song, sample-aligned from time 0.

    Attributes:
        drums: ``(2, samples)`` float32 drum bus.
        music: ``(2, samples)`` float32 bass, chords and lead.
        vocal: ``(samples,)`` float32 dry sung line, peak 0.5.
        vocal_onsets_s: onset of each sung note, s.
        phrase_bounds_s: ``(phrases, 2)`` start and end of each sung phrase, s.
    """

    drums: np.ndarray
    music: np.ndarray
    vocal: np.ndarray
    vocal_onsets_s: np.ndarray
    phrase_bounds_s: np.ndarray


def draw_song_spec(
    style: Style,
    duration_s: float,
    rng: np.random.Generator,
    vocal_coverage: tuple[float, float] = (0.35, 0.7),
) -> SongSpec:
    """Draw a song of ``style``: tempo, key, progression, loop, lead, brightness and singer.

    Styles blur as real genres do: the drums, the chords and the tempo are each taken from
    a neighbouring style (:data:`NEIGHBOURS`) with probability :data:`BORROW_PROBABILITY`.
    ``vocal_coverage`` is the (low, high) range of the share of the song with singing.
    """
    vowels = rng.choice(list(_VOWELS), size=2, replace=False)
    borrowed = [
        STYLES[str(rng.choice(NEIGHBOURS[style.name]))]
        if rng.random() < BORROW_PROBABILITY
        else style
        for _ in range(3)
    ]
    return SongSpec(
        style=style.name,
        drums_style=borrowed[0].name,
        chords_style=borrowed[1].name,
        duration_s=duration_s,
        tempo_bpm=float(rng.uniform(*borrowed[2].tempo_bpm)),
        tonic=int(rng.integers(55, 67)),
        progression=int(rng.integers(len(_PROGRESSIONS))),
        loop=bool(rng.random() < style.loop_probability),
        lead=bool(rng.random() < style.lead_probability),
        brightness_hz=float(rng.uniform(*style.brightness_hz)),
        vocal_low=int(rng.choice([45, 52, 57])),
        vocal_coverage=float(rng.uniform(*vocal_coverage)),
        timing_jitter_ms=float(rng.uniform(10.0, 30.0)),
        intro_s=float(rng.uniform(0.2, 1.2)),
        vowels=(str(vowels[0]), str(vowels[1])),
    )


# --- the arrangement ----------------------------------------------------------------------------


class _Grid:
    """Time grid of a song: 16th steps with swing, bars, beats."""

    def __init__(self, spec: SongSpec, style: Style) -> None:
        self.beat_s = 60.0 / spec.tempo_bpm
        self.step_s = self.beat_s / 4.0
        self.bar_s = self.beat_s * 4.0
        self.bars = math.ceil(spec.duration_s / self.bar_s)
        steps = np.arange(self.bars * STEPS_PER_BAR)
        self.step_times = steps * self.step_s + np.where(
            steps % 2 == 1, style.swing * self.step_s, 0.0
        )

    def hits(self, steps: str, rng: np.random.Generator, loop: bool) -> np.ndarray:
        """Indices of the steps played: one draw per step, or one bar repeated when ``loop``."""
        probability = pattern(steps)
        if loop:
            played = np.tile(rng.random(STEPS_PER_BAR) < probability, self.bars)
        else:
            played = rng.random(self.bars * STEPS_PER_BAR) < np.tile(probability, self.bars)
        return np.flatnonzero(played)


def _velocities(count: int, spread_db: float, rng: np.random.Generator) -> np.ndarray:
    return db_to_gain(rng.normal(0.0, spread_db, count))


def _chords(spec: SongSpec, grid: _Grid) -> np.ndarray:
    """``(bars, 4)`` MIDI notes of each bar's chord: root, third, fifth, octave, near middle C."""
    progression = _PROGRESSIONS[spec.progression]
    rows = []
    for bar in range(grid.bars):
        offset, minor = progression[bar % len(progression)]
        root = 48 + (spec.tonic + offset) % 12
        rows.append([root, root + (3 if minor else 4), root + 7, root + 12])
    return np.array(rows)


def _line_notes(
    grid: _Grid, steps: np.ndarray, pitches: np.ndarray, velocity: np.ndarray, legato: bool
) -> Notes:
    onsets = grid.step_times[steps]
    ends = np.append(onsets[1:], onsets[-1] + grid.beat_s) if legato else onsets + grid.step_s
    return Notes(onsets, ends - onsets, pitches, velocity)


def _render_pitched(
    notes: Notes,
    samples: int,
    sr: int,
    wave: str,
    envelope: tuple[float, float, float, float],
    detune_cents: float = 0.0,
) -> tuple[int, list[np.ndarray]]:
    """One float32 signal per voice (column of ``notes.pitch``), all under one envelope.

    Each note restarts its oscillator (phase 0 at its onset, where its envelope is 0), so
    the phase is the note's frequency times the time since its onset. With
    ``detune_cents`` every voice is doubled by a copy detuned by that amount.

    Returns:
        The first onset (sample) and the signals from there on, ``(samples - first,)`` each.
    """
    segments = Segments.of(notes.onset_s, samples, sr)
    env = adsr(notes, segments, *envelope)
    pitch = np.atleast_2d(notes.pitch.T).T
    detunes = (0.0, detune_cents / 100.0) if detune_cents else (0.0,)
    signals = []
    for voice in range(pitch.shape[1]):
        for detune in detunes:
            note_hz = midi_to_hz(pitch[:, voice] + detune)
            table = band_limited_table(wave, float(note_hz.max()), sr)
            cycles = segments.hold(note_hz.astype(np.float32)) * segments.since_s
            signals.append(env * lookup(table, cycles + np.float32(voice * 0.17 + detune)))
    return segments.first, signals


def _drive(signal: np.ndarray, amount: float) -> np.ndarray:
    if amount <= 0.0:
        return signal
    gain = 1.0 + 8.0 * amount
    return np.asarray(np.tanh(gain * signal) / math.tanh(gain), dtype=np.float32)


# --- drums --------------------------------------------------------------------------------------
def _render_drums(
    spec: SongSpec, style: Style, grid: _Grid, samples: int, sr: int, rng: np.random.Generator
) -> np.ndarray:
    """The drum bus: the style's patterns, plus (unless the song loops) fills and crashes.

    Fills (snare 16ths at the end of some odd bars) and crash cymbals (most 4-bar phrase
    starts, a few other bars) break the bar-to-bar periodicity the way arrangements do; a
    looped song repeats one bar and has at most a crash on its first beat.
    """
    kit = STYLES[spec.drums_style]
    drums = np.zeros((2, samples), dtype=np.float32)
    bars = np.arange(grid.bars)
    if spec.loop:
        fills = np.zeros(0, dtype=np.int64)
        crashes = bars[:1] if rng.random() < 0.5 else bars[:0]
    else:
        fill_bars = bars[(bars % 2 == 1) & (rng.random(grid.bars) < 0.6)]
        fills = (fill_bars[:, None] * STEPS_PER_BAR + np.arange(12, 16)).ravel()
        fills = fills[rng.random(fills.size) < 0.6]
        crashes = bars[
            ((bars % 4 == 0) & (rng.random(grid.bars) < 0.8)) | (rng.random(grid.bars) < 0.2)
        ]
    for kind, steps, extra, position, level_db in (
        ("kick", kit.kick, None, 0.0, 0.0),
        ("snare", kit.snare, fills, 0.1, -3.0),
        ("hat", kit.hats, None, 0.35 * style.spread, kit.hats_db),
        ("crash", None, crashes * STEPS_PER_BAR, -0.4 * style.spread, -12.0),
    ):
        hits = grid.hits(steps, rng, spec.loop) if steps else np.zeros(0, dtype=np.int64)
        if extra is not None:
            hits = np.union1d(hits, extra)
        if hits.size == 0:
            continue
        accents = np.where(hits % 4 == 0, 1.0, 0.7)
        gains = accents * _velocities(hits.size, style.velocity_spread_db, rng)
        onsets = np.round(grid.step_times[hits] * sr).astype(np.int64)
        sound = drum_sound(kind, kit.kit, sr, rng)
        add_panned(drums, place_hits(samples, sound, onsets, gains), position, level_db)
    return drums


# --- pitched parts ------------------------------------------------------------------------------


def _render_music(
    spec: SongSpec, style: Style, grid: _Grid, samples: int, sr: int, rng: np.random.Generator
) -> np.ndarray:
    music = np.zeros((2, samples), dtype=np.float32)
    chords = _chords(spec, grid)
    bar_of = np.arange(grid.bars * STEPS_PER_BAR) // STEPS_PER_BAR

    bass_steps = grid.hits(style.bass, rng, spec.loop)
    if bass_steps.size:
        fifths = np.where(rng.random(bass_steps.size) < 0.2, 7, 0)
        bass_pitch = chords[bar_of[bass_steps], 0] - 24 + fifths
        velocity = _velocities(bass_steps.size, style.velocity_spread_db, rng)
        notes = _line_notes(
            grid, bass_steps, bass_pitch, velocity, legato=style.bass_wave != "pluck"
        )
        first, (bass,) = _render_pitched(
            notes, samples, sr, style.bass_wave, _BASS_ENVELOPES[style.bass_wave]
        )
        add_panned(music, _drive(bass, 0.5 * style.drive), 0.0, style.bass_db, first)

    band = STYLES[spec.chords_style]
    wave, attack, decay, sustain, release, voices, detune = _CHORD_SOUNDS[band.chord_sound]
    chord_steps = grid.hits(band.chords, rng, spec.loop)
    if chord_steps.size:
        pitch = chords[bar_of[chord_steps], :voices]
        if band.chord_sound == "power":  # root, fifth, octave
            pitch = chords[bar_of[chord_steps]][:, [0, 2, 3]] - 12
        velocity = _velocities(chord_steps.size, style.velocity_spread_db, rng)
        notes = _line_notes(grid, chord_steps, pitch, velocity, legato=sustain > 0.0)
        first, parts = _render_pitched(
            notes, samples, sr, wave, (attack, decay, sustain, release), detune
        )
        strum = int(0.012 * sr) if band.chord_sound == "guitar" else 0
        positions = np.linspace(-style.spread, style.spread, len(parts))
        for number, (part, position) in enumerate(zip(parts, positions, strict=True)):
            start = first + number * strum
            add_panned(music, _drive(part, style.drive), position, band.chords_db - 5.0, start)

    if spec.lead:
        lead_steps = grid.hits("x.o.-.x.o.-.x.-.", rng, loop=False)
        if lead_steps.size:
            degrees = np.cumsum(rng.integers(-2, 3, lead_steps.size)) % 10
            lead_pitch = spec.tonic + 12 + _PENTATONIC[degrees % 5] + 12 * (degrees // 5)
            velocity = _velocities(lead_steps.size, style.velocity_spread_db, rng)
            notes = _line_notes(grid, lead_steps, lead_pitch, velocity, legato=False)
            first, (lead,) = _render_pitched(
                notes, samples, sr, style.lead_wave, (0.01, 0.25, 0.5, 0.1)
            )
            add_panned(music, lead, 0.3 * style.spread, style.chords_db - 8.0, first)

    if style.pump_db > 0.0:  # side-chain ducking on every beat
        beats = Segments.of(np.arange(0.0, spec.duration_s, grid.beat_s), samples, sr)
        duck_db = style.pump_db * np.exp(beats.since_s / np.float32(-0.12))
        music *= beats.pad(db_to_gain(-duck_db).astype(np.float32), before=1.0)
    return music


# --- the voice ----------------------------------------------------------------------------------


def _vocal_notes(
    spec: SongSpec, style: Style, grid: _Grid, rng: np.random.Generator
) -> tuple[Notes, np.ndarray]:
    """Sung notes on an 8th-note grid in phrases separated by rests, and the phrase bounds."""
    eighth = grid.beat_s / 2.0
    total = int(spec.duration_s / eighth)
    mean_length = 2.0 / style.vocal_notes_per_beat
    onsets, lengths, phrases = [], [], []
    position = int(rng.integers(1, 7))
    degree = int(rng.integers(3, 8))
    while position < total - 2:
        phrase_length = int(rng.integers(6, 15))
        start = position
        while position < min(start + phrase_length, total - 1):
            length = max(1, min(int(rng.poisson(mean_length - 1.0)) + 1, 4))
            onsets.append(position)
            lengths.append(length)
            position += length
        phrases.append((start * eighth, position * eighth))
        rest = phrase_length * (1.0 - spec.vocal_coverage) / spec.vocal_coverage
        position += max(2, round(rest * rng.uniform(0.6, 1.4)))
    count = len(onsets)
    steps = np.clip(np.cumsum(rng.choice([-2, -1, -1, 0, 1, 1, 2], size=count)) + degree, 0, 9)
    tonic_in_range = spec.vocal_low + (spec.tonic - spec.vocal_low) % 12
    pitch = tonic_in_range - 12 + _PENTATONIC[steps % 5] + 12 * (steps // 5) + 5
    onset_s = np.array(onsets) * eighth + rng.normal(0.0, spec.timing_jitter_ms / 1000.0, count)
    order = np.argsort(onset_s)
    notes = Notes(
        onset_s=onset_s[order],
        duration_s=(np.array(lengths) * eighth)[order],
        pitch=pitch[order].astype(np.float64),
        velocity=_velocities(count, 0.5 * style.velocity_spread_db + 1.0, rng)[order],
    )
    return notes, np.array(phrases, dtype=np.float64).reshape(-1, 2)


def _formant_bank(vowel: str, sr: int) -> np.ndarray:
    return np.stack(
        [
            peak(freq, gain, _FORMANT_Q, sr)
            for freq, gain in zip(_VOWELS[vowel], _FORMANT_GAINS_DB, strict=True)
        ]
    )


def _render_vocal(
    spec: SongSpec, style: Style, grid: _Grid, samples: int, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, Notes, np.ndarray]:
    notes, phrases = _vocal_notes(spec, style, grid, rng)
    if notes.onset_s.size == 0:
        return np.zeros(samples, dtype=np.float32), notes, phrases
    segments = Segments.of(notes.onset_s, samples, sr)
    # pitch at a control rate of sr / CONTROL_STEP: portamento (a one-pole glide), then
    # vibrato fading in after each onset; held per control step for the oscillator
    control_sr = sr / CONTROL_STEP
    steps = -(-samples // CONTROL_STEP)
    control = Segments.of(notes.onset_s, steps, control_sr)
    glide = 1.0 - math.exp(-1.0 / (rng.uniform(0.02, 0.045) * control_sr))
    held = control.pad(control.hold(notes.pitch), before=float(notes.pitch[0]))
    pitch = lfilter([glide], [1.0, glide - 1.0], held, zi=[held[0] * (1.0 - glide)])[0]
    rate_hz, depth = rng.uniform(4.8, 6.4), rng.uniform(0.2, 0.55)
    fade_in = control.pad(np.minimum(control.since_s / np.float32(0.35), 1.0))
    pitch += (
        depth * fade_in * lookup(wavetable("sine", 1), np.arange(steps) * (rate_hz / control_sr))
    )
    freq = np.repeat(midi_to_hz(pitch), CONTROL_STEP)[:samples]
    source = oscillate(freq, sr, band_limited_table("glottal", float(freq.max()), sr))
    breath = np.diff(rng.random(samples + 1, dtype=np.float32))  # high-passed white noise
    # amplitude: phrase envelope, a re-articulation dip at each note, note velocity
    phrase_notes = Notes(
        phrases[:, 0], phrases[:, 1] - phrases[:, 0], phrases[:, 0], np.ones(len(phrases))
    )
    phrase_segments = Segments.of(phrase_notes.onset_s, samples, sr)
    envelope = phrase_segments.pad(adsr(phrase_notes, phrase_segments, 0.08, 1e3, 1.0, 0.1))
    articulation = np.minimum(segments.since_s / np.float32(0.06), 1.0) * np.float32(
        0.3
    ) + np.float32(0.7)
    envelope *= segments.pad(articulation * segments.hold(notes.velocity.astype(np.float32)))
    voiced = (source + np.float32(0.03) * breath) * envelope
    # vowels: two formant banks crossfaded note by note
    choice = control.pad(control.hold(rng.random(notes.onset_s.size)), before=0.5)
    smooth = math.exp(-1.0 / (0.01 * control_sr))  # 10 ms crossfades
    blend = lfilter([1.0 - smooth], [1.0, -smooth], choice, zi=[0.5 * smooth])[0]
    blend = np.repeat(blend, CONTROL_STEP)[:samples]
    start = max(int(phrases[0, 0] * sr) - 1, 0)  # silent before, 87 dB down 1 s after
    stop = min(int((phrases[-1, 1] + 1.0) * sr), samples)
    vocal = np.zeros(samples)
    first = sosfilt(_formant_bank(spec.vowels[0], sr), voiced[start:stop])
    second = sosfilt(_formant_bank(spec.vowels[1], sr), voiced[start:stop])
    vocal[start:stop] = blend[start:stop] * (first - second) + second
    # consonants: short noise bursts 30-100 ms before some notes
    burst = sosfilt(bandpass((2500.0, 9000.0), sr), rng.standard_normal(int(0.03 * sr)))
    burst *= np.hanning(burst.size)
    consonant = rng.random(notes.onset_s.size) < 0.6
    lead_s = rng.uniform(0.03, 0.1, int(consonant.sum()))  # consonants precede the vowel
    starts = np.round((notes.onset_s[consonant] - lead_s) * sr).astype(np.int64)
    vocal += (
        0.2 * np.abs(vocal).max() * place_hits(samples, burst, starts, notes.velocity[consonant])
    )
    vocal *= 0.5 / max(float(np.abs(vocal).max()), 1e-9)
    return vocal.astype(np.float32), notes, phrases


def render_song(spec: SongSpec, sr: int, rng: np.random.Generator) -> Song:
    """Render the stems of ``spec`` at ``sr`` Hz (drums, music, dry vocal), float32.

    The pitched instruments are low-passed at the song's brightness (the drums' bands are
    set by the kit); levels follow the style (drums, bass and chords relative to each
    other); the vocal is peak 0.5.
    """
    style = STYLES[spec.style]
    samples = round(spec.duration_s * sr)
    grid = _Grid(spec, style)
    lowpass = butter(2, min(spec.brightness_hz, 0.45 * sr), btype="lowpass", fs=sr, output="sos")
    drums = _render_drums(spec, style, grid, samples, sr, rng) * np.float32(
        10.0 ** (style.drums_db / 20.0)
    )
    music = sosfilt(lowpass, _render_music(spec, style, grid, samples, sr, rng))
    intro = min(int(spec.intro_s * sr), samples)  # the band fades in from -40 dB
    fade = db_to_gain(np.linspace(-40.0, 0.0, intro, dtype=np.float32))
    drums[:, :intro] *= fade
    music[:, :intro] *= fade
    vocal, notes, phrases = _render_vocal(spec, style, grid, samples, sr, rng)
    return Song(
        drums=drums.astype(np.float32),
        music=music.astype(np.float32),
        vocal=vocal,
        vocal_onsets_s=notes.onset_s,
        phrase_bounds_s=phrases,
    )
