"""Audio datasets: one file (``(audio, sr)`` in and out), and a folder written by key."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
from kedro.io.core import AbstractDataset, DatasetError

from mixai_inference import load_audio
from mixai_ml.datasets.folder import FolderDataset

_FORMATS: Final = {".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "FLOAT")}
"""Suffix -> (libsndfile format, subtype) written by :meth:`AudioDataset.save`."""
_PCM16_SCALE: Final = 32768.0


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """16-bit integer samples of float ``audio`` (full scale 1), rounded and clipped.

    Integer codes ``round(x * 32768)`` (of ``x`` as float32) clipped to [-32768, 32767]
    (so full scale is clipped); reading them back as
    float divides by 32768 (:func:`from_pcm16`), as libsndfile and
    :func:`mixai_inference.load_audio` do.
    """
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(_PCM16_SCALE)  # exact: 2**15
    np.rint(scaled, out=scaled)
    np.clip(scaled, -_PCM16_SCALE, _PCM16_SCALE - 1.0, out=scaled)
    return scaled.astype(np.int16)


def from_pcm16(codes: np.ndarray) -> np.ndarray:
    """float32 samples of 16-bit codes: what loading a 16-bit file returns."""
    return np.asarray(codes, dtype=np.float32) / np.float32(_PCM16_SCALE)


class AudioDataset(AbstractDataset[tuple[np.ndarray, int], tuple[np.ndarray, int]]):
    """An audio file on the local file system.

    Loading decodes it with :func:`mixai_inference.load_audio` (validated float32
    ``(channels, samples)`` and the sample rate), exactly as production reads uploads.
    Saving writes ``(audio, sr)`` (``(channels, samples)`` or ``(samples,)`` float) by
    the file's suffix: ``.flac`` as 16-bit FLAC (:func:`to_pcm16`; deterministic bytes, and
    loading gives exactly ``from_pcm16(to_pcm16(audio))``), ``.wav`` as 32-bit float WAV;
    values are clipped to [-1, 1] and parent folders created.

    Args:
        filepath: Path of the file (``.flac`` or ``.wav`` to save; any format
            :func:`mixai_inference.load_audio` accepts to load).
        metadata: Free-form metadata, ignored by Kedro.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def load(self) -> tuple[np.ndarray, int]:
        return load_audio(self._filepath)

    def save(self, data: tuple[np.ndarray, int]) -> None:
        audio, sr = data
        fmt = _FORMATS.get(self._filepath.suffix.lower())
        if fmt is None:
            raise DatasetError(
                f"cannot save {self._filepath}: the suffix must be one of {sorted(_FORMATS)}"
            )
        samples = np.asarray(audio)
        if samples.ndim not in (1, 2) or not np.issubdtype(samples.dtype, np.floating):
            raise DatasetError(
                f"cannot save {self._filepath}: expected float (samples,) or (channels, samples), "
                f"got {samples.dtype} {samples.shape}"
            )
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        frames = to_pcm16(samples) if fmt[1] == "PCM_16" else np.clip(samples, -1.0, 1.0)
        sf.write(self._filepath, frames.T, int(sr), format=fmt[0], subtype=fmt[1])


class AudioFolder:
    """A folder of audio files, written by key (a path relative to the folder).

    Picklable, so that worker processes write their own files. Keys are the paths the
    ``jobs`` table holds, e.g. ``jobs/J000001/mix.flac``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, key: str, audio: np.ndarray, sr: int) -> None:
        """Write ``audio`` as ``key`` (see :meth:`AudioDataset.save`)."""
        AudioDataset(filepath=str(self._path(key))).save((audio, sr))

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace the file ``key`` by ``data`` (atomically)."""
        path = self._path(key)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(data)
        staging.replace(path)

    def remove(self, key: str) -> None:
        """Delete the file or the whole folder ``key``, if it exists."""
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        relative = Path(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{key!r} is not a path inside the audio folder")
        return self.root / relative


class AudioFolderDataset(FolderDataset[None, AudioFolder]):
    """A folder of audio files, loaded as an :class:`AudioFolder` to write into.

    For a pipeline whose files are written by several processes (the demo world); read
    the same folder with a ``PartitionedDataset`` of :class:`AudioDataset`.

    Args:
        path: The folder.
    """

    def load(self) -> AudioFolder:
        return AudioFolder(self._path)

    def save(self, data: None) -> None:
        raise DatasetError("AudioFolderDataset is written through the AudioFolder it loads")
