"""Procedural synthesis: envelopes and oscillators on known values, styles that differ audibly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mixai_inference.tasks import MASTER_PARAM_RANGES, PRESETS
from mixai_ml.simulation.drums import place_hits
from mixai_ml.simulation.oscillators import (
    WAVETABLE_SIZE,
    Notes,
    Segments,
    adsr,
    lookup,
    midi_to_hz,
    oscillate,
    wavetable,
)
from mixai_ml.simulation.styles import STYLES, pattern
from mixai_ml.simulation.synth import Song, SongSpec, draw_song_spec, render_song

SR = 44100


def test_styles_are_the_six_presets_with_presets_inside_the_contract() -> None:
    assert tuple(STYLES) == PRESETS
    for style in STYLES.values():
        for value, (low, high) in zip(
            style.preset_vector(), MASTER_PARAM_RANGES.values(), strict=True
        ):
            assert low <= value <= high


def test_pattern_strings_map_to_step_probabilities() -> None:
    np.testing.assert_array_equal(pattern("xo-." * 4), np.tile([1.0, 0.6, 0.25, 0.0], 4))
    with pytest.raises(ValueError, match="16 characters"):
        pattern("x...")


def test_midi_to_hz_is_equal_tempered() -> None:
    np.testing.assert_allclose(
        midi_to_hz(np.array([69.0, 81.0, 60.0])), [440.0, 880.0, 261.6256], rtol=1e-6
    )


def test_oscillator_produces_its_frequency() -> None:
    signal = oscillate(np.full(SR, 441.0), SR, wavetable("sine", 1))
    spectrum = np.abs(np.fft.rfft(signal))
    assert np.argmax(spectrum) == 441  # 1 Hz bins over one second
    assert lookup(wavetable("sine", 1), np.array([0.25]))[0] == pytest.approx(1.0, abs=1e-3)


def test_band_limited_tables_have_no_partials_above_their_limit() -> None:
    spectrum = np.abs(np.fft.rfft(wavetable("saw", 10)))
    assert spectrum[1:11].min() > 1.0
    assert spectrum[11:].max() < 1e-6 * spectrum[1]
    assert wavetable("saw", 10).size == WAVETABLE_SIZE


def test_segments_hold_each_note_until_the_next_onset() -> None:
    segments = Segments.of(np.array([0.5, 1.0]), 2 * SR, SR)
    assert segments.first == SR // 2
    np.testing.assert_array_equal(segments.counts, [SR // 2, SR])
    assert segments.since_s[0] == 0.0
    assert segments.since_s[SR // 2 - 1] == pytest.approx(0.5 - 1.0 / SR)
    assert segments.since_s[SR // 2] == 0.0


def test_adsr_attacks_decays_to_sustain_and_releases() -> None:
    notes = Notes(np.array([0.0]), np.array([0.5]), np.array([60.0]), np.array([0.8]))
    segments = Segments.of(notes.onset_s, SR, SR)
    env = adsr(notes, segments, attack_s=0.01, decay_s=0.05, sustain=0.5, release_s=0.1)
    assert env[0] == 0.0
    assert env[int(0.01 * SR)] == pytest.approx(0.8 * (0.5 + 0.5 * np.exp(-0.2)), rel=1e-3)
    assert env[int(0.45 * SR)] == pytest.approx(0.8 * 0.5, rel=1e-3)  # sustained
    assert env[int(0.6 * SR)] == pytest.approx(0.8 * 0.5 * np.exp(-1.0), rel=1e-2)  # released


def test_place_hits_adds_sounds_at_their_onsets() -> None:
    out = place_hits(10, np.array([1.0, 0.5]), np.array([2, 9, 20]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out, [0, 0, 1.0, 0.5, 0, 0, 0, 0, 0, 2.0])


Songs = dict[str, list[tuple[SongSpec, Song]]]


@pytest.fixture(scope="module")
def songs() -> Songs:
    """Two 4 s songs per style, with their specs."""
    result: Songs = {}
    for name, style in STYLES.items():
        result[name] = []
        for seed in (1, 2):
            rng = np.random.default_rng(seed)
            spec = draw_song_spec(style, 4.0, rng)
            result[name].append((spec, render_song(spec, SR, rng)))
    return result


def test_songs_are_finite_float32_stems_of_the_right_shape(songs: Songs) -> None:
    for spec, song in songs["natural"]:
        samples = int(spec.duration_s * SR)
        assert song.drums.shape == song.music.shape == (2, samples)
        assert song.vocal.shape == (samples,)
        for stem in (song.drums, song.music, song.vocal):
            assert stem.dtype == np.float32
            assert np.isfinite(stem).all()
        assert np.abs(song.vocal).max() == pytest.approx(0.5, rel=1e-6)


def test_rendering_is_a_pure_function_of_spec_and_seed() -> None:
    spec = draw_song_spec(STYLES["loud_edm"], 3.0, np.random.default_rng(5))
    first, second = (render_song(spec, SR, np.random.default_rng(9)) for _ in range(2))
    np.testing.assert_array_equal(first.music, second.music)
    np.testing.assert_array_equal(first.vocal, second.vocal)


def _high_band_db(audio: np.ndarray) -> float:
    """Share of the power above 4 kHz, dB."""
    power = np.abs(np.fft.rfft(audio.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1.0 / SR)
    return float(10.0 * np.log10(power[freqs > 4000.0].sum() / power.sum()))


def _side_to_mid(audio: np.ndarray) -> float:
    return float(np.mean((audio[0] - audio[1]) ** 2) / np.mean((audio[0] + audio[1]) ** 2))


def _tempo(spec: SongSpec, song: Song) -> float:
    return float(spec.tempo_bpm)


def _brightness(spec: SongSpec, song: Song) -> float:
    return _high_band_db(song.drums + song.music)


def _width(spec: SongSpec, song: Song) -> float:
    return _side_to_mid(song.drums + song.music)


def test_styles_differ_in_tempo_brightness_and_width(songs: Songs) -> None:
    def mean(name: str, measure: Callable[[SongSpec, Song], float]) -> float:
        return float(np.mean([measure(spec, song) for spec, song in songs[name]]))

    assert mean("warm_ballad", _tempo) < mean("natural", _tempo) < mean("punchy_rock", _tempo)
    assert (
        mean("warm_ballad", _brightness)
        < mean("punchy_rock", _brightness)
        < mean("bright_pop", _brightness)
    )
    assert mean("soft_acoustic", _width) < mean("loud_edm", _width)


def test_the_voice_is_a_pitched_line_in_phrases_with_pauses(songs: Songs) -> None:
    for _, song in songs["natural"]:
        frames = song.vocal[: song.vocal.size // 2048 * 2048].reshape(-1, 2048)
        level = np.sqrt(np.mean(frames**2, axis=1))
        silent = level < 1e-3 * level.max()
        assert 0.1 < silent.mean() < 0.8  # phrases separated by rests
        loudest = frames[np.argmax(level)]
        spectrum = np.abs(np.fft.rfft(loudest * np.hanning(2048)))
        f0_hz = np.argmax(spectrum[5:60]) * SR / 2048 + 5 * SR / 2048
        assert 80.0 < f0_hz < 1300.0  # a sung fundamental, not noise
        assert song.phrase_bounds_s.shape[1] == 2
        assert (np.diff(song.vocal_onsets_s) >= 0).all()
