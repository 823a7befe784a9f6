"""A Kedro dataset for one audio file: ``(audio, sr)`` in, ``(audio, sr)`` out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
from kedro.io.core import AbstractDataset, DatasetError

from mixai_inference import load_audio

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
