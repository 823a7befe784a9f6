"""Bad input: every rejected file or array raises its AudioError subclass with a clear message."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from synthetic_audio import music

from mixai_inference import (
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    CorruptFileError,
    EmptyFileError,
    InvalidAudioArrayError,
    InvalidSampleRateError,
    NonFiniteAudioError,
    TooManyChannelsError,
    TruncatedFileError,
    UnsupportedFormatError,
    estimate_alignment,
    extract_features,
    load_audio,
    measure_loudness,
)
from mixai_inference.audio import MAX_DURATION_S, MIN_DURATION_S

SR = 16000


@pytest.fixture
def song() -> np.ndarray:
    return music(SR, 5.0)


@pytest.fixture
def wav_file(tmp_path: Path, song: np.ndarray) -> Path:
    path = tmp_path / "song.wav"
    sf.write(path, song.T, SR, subtype="PCM_16")
    return path


def _raises(error: type[AudioError], *keywords: str) -> pytest.RaisesExc[AudioError]:
    """Expect ``error`` whose message contains every keyword (case-insensitive)."""
    pattern = "".join(f"(?=.*{keyword})" for keyword in keywords)
    return pytest.raises(error, match=f"(?is){pattern}")


def test_every_audio_error_is_a_value_error() -> None:
    assert issubclass(AudioError, ValueError)
    assert issubclass(AudioFileNotFoundError, FileNotFoundError)
    assert issubclass(TruncatedFileError, CorruptFileError)


# -- files --------------------------------------------------------------------------------------


def test_round_trip_of_a_valid_wav(wav_file: Path, song: np.ndarray) -> None:
    audio, sr = load_audio(wav_file)
    assert sr == SR
    assert audio.dtype == np.float32
    assert audio.shape == song.shape
    np.testing.assert_allclose(audio, song, atol=1.0 / 32768)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "AIFF"])
def test_other_accepted_containers_load(tmp_path: Path, song: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"song.{fmt.lower()}"
    sf.write(path, song.T, SR, format=fmt)
    audio, sr = load_audio(path)
    assert (audio.shape[0], sr) == (2, SR)
    assert abs(audio.shape[1] - song.shape[1]) <= 0.02 * song.shape[1]


def test_missing_file(tmp_path: Path) -> None:
    with _raises(AudioFileNotFoundError, "no such file", "accepted"):
        load_audio(tmp_path / "missing.wav")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with _raises(AudioFileNotFoundError, "not a regular file", "accepted"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with _raises(EmptyFileError, "empty", "0 bytes", "accepted"):
        load_audio(path)


def test_header_without_frames(tmp_path: Path) -> None:
    path = tmp_path / "no_frames.wav"
    sf.write(path, np.zeros((0, 2), dtype=np.float32), SR)
    with _raises(EmptyFileError, "no audio frames", "accepted"):
        load_audio(path)


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with _raises(CorruptFileError, "cannot be decoded", "accepted"):
        load_audio(path)


def test_unknown_container(tmp_path: Path) -> None:
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(64))
    with _raises(UnsupportedFormatError, "not a recognised audio file", "accepted", "WAV"):
        load_audio(path)


def test_readable_but_unsupported_format(tmp_path: Path, song: np.ndarray) -> None:
    path = tmp_path / "matrix.mat"
    sf.write(path, song.T, SR, format="MAT5")
    with _raises(UnsupportedFormatError, "MAT", "accepted", "FLAC"):
        load_audio(path)


def test_truncated_wav(tmp_path: Path, wav_file: Path) -> None:
    data = wav_file.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with _raises(TruncatedFileError, "truncated", "declares", "accepted"):
        load_audio(path)


def test_truncated_flac(tmp_path: Path, song: np.ndarray) -> None:
    full = tmp_path / "full.flac"
    sf.write(full, song.T, SR, format="FLAC")
    data = full.read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    with _raises(TruncatedFileError, "truncated", "accepted"):
        load_audio(path)


def test_header_declaring_three_hours_is_rejected_before_decoding(
    tmp_path: Path, wav_file: Path
) -> None:
    """The RIFF header claims 3 h of 16-bit stereo; the check happens before decoding."""
    data = bytearray(wav_file.read_bytes())
    data_chunk = data.index(b"data")
    declared_bytes = 3 * 3600 * SR * 2 * 2
    data[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", declared_bytes)
    data[4:8] = struct.pack("<I", declared_bytes + data_chunk)
    path = tmp_path / "three_hours.wav"
    path.write_bytes(bytes(data))
    with _raises(AudioTooLongError, "10800", "longer than the maximum", f"{MAX_DURATION_S:g} s"):
        load_audio(path)


def test_too_short_file(tmp_path: Path, song: np.ndarray) -> None:
    path = tmp_path / "blip.wav"
    sf.write(path, song[:, : SR // 2].T, SR)
    with _raises(
        AudioTooShortError, "0.500 s", "shorter than the minimum", f"{MIN_DURATION_S:g} s"
    ):
        load_audio(path)


def test_surround_file(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    sf.write(path, np.zeros((4 * SR, 6), dtype=np.float32), SR)
    with _raises(TooManyChannelsError, "6 channels", "mono or stereo"):
        load_audio(path)


def test_file_with_nan_samples(tmp_path: Path, song: np.ndarray) -> None:
    broken = song.copy()
    broken[1, 1000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, broken.T, SR, subtype="FLOAT")
    with _raises(NonFiniteAudioError, "NaN or infinite", "finite"):
        load_audio(path)


def test_file_with_absurd_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    sf.write(path, np.zeros((4 * 4000, 1), dtype=np.float32), 4000)
    with _raises(InvalidSampleRateError, "4000 Hz", "8000", "384000"):
        load_audio(path)


# -- arrays -------------------------------------------------------------------------------------

Entry = Callable[[Any, Any], object]

ENTRY_POINTS: dict[str, Entry] = {
    "extract_features": lambda audio, sr: extract_features(audio, sr),
    "measure_loudness": lambda audio, sr: measure_loudness(audio, sr),
    "estimate_alignment": lambda audio, sr: estimate_alignment(audio, audio, sr),
}


@pytest.fixture(params=sorted(ENTRY_POINTS))
def entry(request: pytest.FixtureRequest) -> Entry:
    return ENTRY_POINTS[request.param]


def test_nan_and_inf_samples(entry: Entry, song: np.ndarray) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        broken = song.copy()
        broken[0, 123] = bad
        with _raises(NonFiniteAudioError, "NaN or infinite", "sample 123", "finite"):
            entry(broken, SR)


def test_empty_audio(entry: Entry) -> None:
    with _raises(AudioTooShortError, "empty", f"{MIN_DURATION_S:g} s"):
        entry(np.zeros((2, 0), dtype=np.float32), SR)


def test_too_short_audio(entry: Entry) -> None:
    with _raises(AudioTooShortError, "shorter than the minimum", f"{MIN_DURATION_S:g} s"):
        entry(np.zeros(SR, dtype=np.float32), SR)


def test_too_long_audio(entry: Entry) -> None:
    n = int(MAX_DURATION_S * 8000) + 1  # a read-only zero view: no memory is touched
    audio = np.broadcast_to(np.float32(0.0), (n,))
    with _raises(AudioTooLongError, "longer than the maximum", f"{MAX_DURATION_S:g} s"):
        entry(audio, 8000)


@pytest.mark.parametrize(
    "shape", [(), (2, 3, SR * 4), (0, SR * 4)], ids=["scalar", "3-D", "no channels"]
)
def test_invalid_shapes(entry: Entry, shape: tuple[int, ...]) -> None:
    with _raises(InvalidAudioArrayError, "shape", "accepted", "channels, samples"):
        entry(np.zeros(shape, dtype=np.float32), SR)


def test_samples_by_channels_layout_is_explained(entry: Entry, song: np.ndarray) -> None:
    with _raises(InvalidAudioArrayError, "looks like", "audio.T"):
        entry(song.T, SR)


def test_too_many_channels(entry: Entry) -> None:
    with _raises(TooManyChannelsError, "6 channels", "mono or stereo"):
        entry(np.zeros((6, SR * 4), dtype=np.float32), SR)


@pytest.mark.parametrize("dtype", [np.complex64, np.bool_, np.uint16, object])
def test_unsupported_dtypes(entry: Entry, dtype: type) -> None:
    with _raises(InvalidAudioArrayError, "dtype", "accepted"):
        entry(np.zeros((2, SR * 4), dtype=dtype), SR)


@pytest.mark.parametrize(
    ("sr", "keywords"),
    [
        (0, ("0 Hz", "not positive")),
        (-44100, ("-44100 Hz", "not positive")),
        (4000, ("4000 Hz", "out of range")),
        (10_000_000, ("10000000 Hz", "out of range")),
        (44100.5, ("not a whole number",)),
        (float("nan"), ("not a whole number",)),
        ("fast", ("not a number",)),
        (True, ("boolean",)),
    ],
)
def test_invalid_sample_rates(entry: Entry, sr: object, keywords: tuple[str, ...]) -> None:
    with _raises(InvalidSampleRateError, *keywords, "8000", "384000"):
        entry(np.zeros((2, 4 * 44100), dtype=np.float32), sr)
