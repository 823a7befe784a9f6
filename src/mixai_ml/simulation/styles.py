"""The six presets of ``preset_cls`` (docs/data_contracts.md §3) as styles that differ audibly.

A style fixes what a listener hears: tempo range, rhythmic density (16-step drum,
bass and chord patterns), instrumentation and brightness, dynamics, stereo width,
vocal level and density, and the mastering preset the app offers for it (the
target that the hidden user model of :mod:`mixai_ml.simulation.world` starts from).

Patterns are 16 steps of one 4/4 bar; each character is the probability that the
step is played: ``x`` 1.0, ``o`` 0.6, ``-`` 0.25, ``.`` 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from mixai_inference.tasks import MASTER_PARAM_NAMES

_STEP_PROBABILITY: Final = MappingProxyType({"x": 1.0, "o": 0.6, "-": 0.25, ".": 0.0})


def pattern(steps: str) -> np.ndarray:
    """Per-step hit probabilities ``(16,)`` of a pattern string such as ``"x...o...x...-..."``."""
    if len(steps) != 16 or set(steps) - set(_STEP_PROBABILITY):
        raise ValueError(f"a pattern has 16 characters of {''.join(_STEP_PROBABILITY)}: {steps!r}")
    return np.array([_STEP_PROBABILITY[char] for char in steps])


@dataclass(frozen=True)
class Style:
    """How one preset's music sounds, and the preset's mastering parameters.

    Attributes:
        name: the preset (docs/data_contracts.md §3).
        tempo_bpm: (low, high) tempo range.
        swing: delay of off-beat 16ths, as a fraction of a 16th.
        kit: drum sounds: ``acoustic``, ``electronic``, ``brush`` or ``shaker``.
        kick, snare, hats: 16-step patterns (see module docstring).
        hats_db: level of the hats (or shaker) on the drum bus, dB.
        drums_db: drum bus level, dB.
        bass: 16-step pattern; bass_wave: ``sine``, ``pluck`` or ``saw``; bass_db: level.
        chords: 16-step pattern of chord hits; chord_sound: ``piano``, ``pluck``,
            ``power``, ``supersaw`` or ``guitar``; chords_db: level.
        lead_probability: chance that a lead line plays; lead_wave: its timbre.
        brightness_hz: (low, high) cutoff of the instrument bus low-pass, Hz.
        velocity_spread_db: standard deviation of note and hit levels, dB (dynamics).
        pump_db: side-chain ducking depth on each beat, dB (0: none).
        drive: saturation of chords and bass, 0..1.
        spread: stereo spread of the instruments, 0 (mono) .. 1 (hard-panned).
        loop_probability: chance that one bar repeats unchanged (periodic music).
        vocal_db: vocal level relative to the instrumental, dB.
        vocal_notes_per_beat: melodic density of the vocal line.
        preset: the mastering parameters of the preset, in contract order.
    """

    name: str
    tempo_bpm: tuple[float, float]
    swing: float
    kit: str
    kick: str
    snare: str
    hats: str
    hats_db: float
    drums_db: float
    bass: str
    bass_wave: str
    bass_db: float
    chords: str
    chord_sound: str
    chords_db: float
    lead_probability: float
    lead_wave: str
    brightness_hz: tuple[float, float]
    velocity_spread_db: float
    pump_db: float
    drive: float
    spread: float
    loop_probability: float
    vocal_db: float
    vocal_notes_per_beat: float
    preset: Mapping[str, float]

    def __post_init__(self) -> None:
        for steps in (self.kick, self.snare, self.hats, self.bass, self.chords):
            pattern(steps)
        if tuple(self.preset) != MASTER_PARAM_NAMES:
            raise ValueError(f"preset of {self.name} must list {MASTER_PARAM_NAMES} in order")

    def preset_vector(self) -> np.ndarray:
        """The preset's mastering parameters ``(8,)`` in contract order."""
        return np.array([self.preset[name] for name in MASTER_PARAM_NAMES])


NEIGHBOURS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "natural": ("soft_acoustic", "bright_pop"),
        "bright_pop": ("loud_edm", "natural"),
        "warm_ballad": ("soft_acoustic", "natural"),
        "punchy_rock": ("loud_edm", "natural"),
        "loud_edm": ("bright_pop", "punchy_rock"),
        "soft_acoustic": ("warm_ballad", "natural"),
    }
)
"""The two styles each style is most easily confused with (its songs borrow from them, and
users who do not pick their style's preset often pick one of these)."""


def _preset(*values: float) -> Mapping[str, float]:
    return MappingProxyType(dict(zip(MASTER_PARAM_NAMES, values, strict=True)))


STYLES: Final[Mapping[str, Style]] = MappingProxyType(
    {
        style.name: style
        for style in (
            Style(
                name="natural",
                tempo_bpm=(88.0, 112.0),
                swing=0.05,
                kit="acoustic",
                kick="x.......x.-.....",
                snare="....x.......x..-",
                hats="x.o.x.o.x.o.x.o.",
                hats_db=-9.0,
                drums_db=-3.0,
                bass="x.....-.x.....-.",
                bass_wave="pluck",
                bass_db=-6.0,
                chords="x.......o.......",
                chord_sound="piano",
                chords_db=-6.0,
                lead_probability=0.3,
                lead_wave="soft",
                brightness_hz=(8000.0, 12000.0),
                velocity_spread_db=3.0,
                pump_db=0.0,
                drive=0.0,
                spread=0.5,
                loop_probability=0.3,
                vocal_db=0.0,
                vocal_notes_per_beat=1.0,
                preset=_preset(-14.0, 0.0, 0.0, 0.0, -18.0, 2.2, -1.0, 1.0),
            ),
            Style(
                name="bright_pop",
                tempo_bpm=(100.0, 124.0),
                swing=0.0,
                kit="electronic",
                kick="x.....x.x.......",
                snare="....x.......x...",
                hats="xoxoxoxoxoxoxoxo",
                hats_db=-7.0,
                drums_db=-3.0,
                bass="x.x.x.o.x.x.x.o.",
                bass_wave="pluck",
                bass_db=-8.0,
                chords="x..x..x...x..x..",
                chord_sound="pluck",
                chords_db=-4.0,
                lead_probability=0.8,
                lead_wave="square",
                brightness_hz=(14000.0, 18000.0),
                velocity_spread_db=2.0,
                pump_db=2.0,
                drive=0.1,
                spread=0.75,
                loop_probability=0.5,
                vocal_db=1.0,
                vocal_notes_per_beat=1.5,
                preset=_preset(-11.0, -0.5, 1.0, 2.5, -16.0, 3.0, -1.0, 1.1),
            ),
            Style(
                name="warm_ballad",
                tempo_bpm=(60.0, 80.0),
                swing=0.1,
                kit="brush",
                kick="x.........-.....",
                snare="....-.......o...",
                hats="x...o...x...o...",
                hats_db=-14.0,
                drums_db=-10.0,
                bass="x.......o.......",
                bass_wave="sine",
                bass_db=-6.0,
                chords="x.....o.x.....o.",
                chord_sound="piano",
                chords_db=-4.0,
                lead_probability=0.2,
                lead_wave="sine",
                brightness_hz=(3500.0, 6000.0),
                velocity_spread_db=6.0,
                pump_db=0.0,
                drive=0.0,
                spread=0.6,
                loop_probability=0.2,
                vocal_db=2.0,
                vocal_notes_per_beat=0.75,
                preset=_preset(-16.0, 2.0, -1.0, -2.0, -22.0, 2.0, -1.5, 1.0),
            ),
            Style(
                name="punchy_rock",
                tempo_bpm=(112.0, 150.0),
                swing=0.0,
                kit="acoustic",
                kick="x.....x.x.-.....",
                snare="....x.......x...",
                hats="x.x.x.x.x.x.x.x.",
                hats_db=-8.0,
                drums_db=0.0,
                bass="x.x.x.x.x.x.x.x.",
                bass_wave="saw",
                bass_db=-7.0,
                chords="x.x.x.x.x.x.x.x.",
                chord_sound="power",
                chords_db=-5.0,
                lead_probability=0.4,
                lead_wave="saw",
                brightness_hz=(7000.0, 10000.0),
                velocity_spread_db=2.0,
                pump_db=0.0,
                drive=0.8,
                spread=0.85,
                loop_probability=0.4,
                vocal_db=-1.0,
                vocal_notes_per_beat=1.25,
                preset=_preset(-10.0, 1.0, 2.0, 0.5, -14.0, 4.0, -0.8, 1.15),
            ),
            Style(
                name="loud_edm",
                tempo_bpm=(122.0, 130.0),
                swing=0.0,
                kit="electronic",
                kick="x...x...x...x...",
                snare="....x.......x...",
                hats="..x...x...x...x.",
                hats_db=-7.0,
                drums_db=0.0,
                bass="..x...x...x...x.",
                bass_wave="saw",
                bass_db=-6.0,
                chords="x.....x.....x...",
                chord_sound="supersaw",
                chords_db=-4.0,
                lead_probability=0.7,
                lead_wave="saw",
                brightness_hz=(16000.0, 19000.0),
                velocity_spread_db=0.5,
                pump_db=8.0,
                drive=0.3,
                spread=1.0,
                loop_probability=0.8,
                vocal_db=-2.0,
                vocal_notes_per_beat=1.0,
                preset=_preset(-8.0, 2.5, -0.5, 2.0, -12.0, 5.0, -0.3, 1.25),
            ),
            Style(
                name="soft_acoustic",
                tempo_bpm=(70.0, 96.0),
                swing=0.08,
                kit="shaker",
                kick="x.......-.......",
                snare="................",
                hats="x.o.x.o.x.o.x.o.",
                hats_db=-6.0,
                drums_db=-10.0,
                bass="x.......-.......",
                bass_wave="sine",
                bass_db=-10.0,
                chords="x..x..x.x..x..x.",
                chord_sound="guitar",
                chords_db=-3.0,
                lead_probability=0.2,
                lead_wave="sine",
                brightness_hz=(6000.0, 9000.0),
                velocity_spread_db=5.0,
                pump_db=0.0,
                drive=0.0,
                spread=0.35,
                loop_probability=0.2,
                vocal_db=3.0,
                vocal_notes_per_beat=0.9,
                preset=_preset(-17.0, -1.0, 0.5, 1.0, -24.0, 1.8, -2.0, 0.95),
            ),
        )
    }
)
"""The six styles, keyed and ordered as ``PRESETS`` lists the presets."""
