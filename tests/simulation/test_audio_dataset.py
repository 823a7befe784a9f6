"""AudioDataset: the files the world writes load back exactly as production reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError

from mixai_ml.datasets.audio import AudioDataset, from_pcm16, to_pcm16

SR = 44100


def music(channels: int, seconds: float = 3.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.3 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
def test_flac_round_trip_is_the_16_bit_quantisation(tmp_path: Path, channels: int) -> None:
    audio = music(channels)
    audio[0, :4] = [1.5, -1.5, 0.51 / 32768, -0.5 / 32768]  # clipped, and the rounding edges
    dataset = AudioDataset(filepath=str(tmp_path / "nested" / "take.flac"))
    assert not dataset.exists()
    dataset.save((audio[0] if channels == 1 else audio, SR))
    assert dataset.exists()
    loaded, sr = dataset.load()
    assert sr == SR
    assert loaded.shape == (channels, audio.shape[1])
    np.testing.assert_array_equal(loaded, from_pcm16(to_pcm16(audio)))
    np.testing.assert_array_equal(to_pcm16(audio[0, :4]), [32767, -32768, 1, 0])


def test_flac_bytes_are_deterministic(tmp_path: Path) -> None:
    audio = music(2)
    for name in ("a.flac", "b.flac"):
        AudioDataset(filepath=str(tmp_path / name)).save((audio, SR))
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()


def test_wav_keeps_float_samples(tmp_path: Path) -> None:
    audio = music(2) * 0.5
    dataset = AudioDataset(filepath=str(tmp_path / "mix.wav"))
    dataset.save((audio, SR))
    np.testing.assert_array_equal(dataset.load()[0], audio)


def test_unknown_suffixes_and_non_float_audio_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"suffix must be one of \['.flac', '.wav'\]"):
        AudioDataset(filepath=str(tmp_path / "take.mp3")).save((music(1), SR))
    with pytest.raises(DatasetError, match="expected float"):
        AudioDataset(filepath=str(tmp_path / "take.flac")).save((np.zeros((2, SR), np.int16), SR))


def test_describe_names_the_file(tmp_path: Path) -> None:
    assert str(tmp_path / "x.flac") in str(AudioDataset(filepath=str(tmp_path / "x.flac")))
