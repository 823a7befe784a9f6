"""Audio input: decoding, validation, conversion, downmix and resampling.

Audio arrays in this package are float32 with shape ``(channels, samples)`` and values in
[-1, 1] at full scale (louder values are accepted). Every function that takes audio from a
caller goes through :func:`as_float_audio`, which enforces the input policy:

* 1 or 2 channels (mono or stereo); surround files must be downmixed first;
* sample rate: a whole number of hertz from 8 000 to 384 000;
* duration: from 3 s (the EBU short-term loudness window) to 600 s (10 minutes);
* finite samples only.

Rejected inputs raise a subclass of :class:`mixai_inference.errors.AudioError`.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from mixai_inference.errors import (
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
)

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "MAX_CHANNELS",
    "MAX_DURATION_S",
    "MAX_SAMPLE_RATE",
    "MIN_DURATION_S",
    "MIN_SAMPLE_RATE",
    "as_float_audio",
    "load_audio",
    "load_pair",
    "resample",
    "to_mono",
]

MIN_DURATION_S = 3.0
MAX_DURATION_S = 600.0
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 2

#: libsndfile major format -> file extensions accepted for it.
ACCEPTED_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"),
    "WAVEX": (".wav", ".wave"),
    "RF64": (".wav", ".rf64"),
    "W64": (".w64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"),
}
_ACCEPTED_TEXT = "WAV, FLAC, OGG (Vorbis/Opus), MP3 or AIFF"
# Lossy decoders may report an estimated length; allow this shortfall before calling it truncated.
_LOSSY_FORMATS = frozenset({"MP3", "OGG"})
_LOSSY_LENGTH_TOLERANCE = 0.02
_DECODE_BLOCK_FRAMES = 1 << 16

_CHANNEL_POLICY = f"mono or stereo (1 or {MAX_CHANNELS} channels); downmix surround audio first"
_SAMPLE_RATE_POLICY = f"a whole number of hertz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}"
_DURATION_POLICY = f"from {MIN_DURATION_S:g} s to {MAX_DURATION_S:g} s"


def _check_sample_rate(sr: Any) -> int:
    """Return ``sr`` as an int after checking it is a whole number in the accepted range."""
    if isinstance(sr, bool | np.bool_):
        raise InvalidSampleRateError(
            f"sample rate {sr!r} is a boolean; accepted: {_SAMPLE_RATE_POLICY}"
        )
    try:
        value = float(sr)
    except (TypeError, ValueError):
        raise InvalidSampleRateError(
            f"sample rate {sr!r} is not a number; accepted: {_SAMPLE_RATE_POLICY}"
        ) from None
    if not math.isfinite(value) or value != round(value):
        raise InvalidSampleRateError(
            f"sample rate {sr!r} is not a whole number of hertz; accepted: {_SAMPLE_RATE_POLICY}"
        )
    rate = int(value)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        problem = "not positive" if rate <= 0 else "out of range"
        raise InvalidSampleRateError(
            f"sample rate {rate} Hz is {problem}; accepted: {_SAMPLE_RATE_POLICY}"
        )
    return rate


def _check_channels(n_channels: int) -> None:
    if n_channels > MAX_CHANNELS:
        raise TooManyChannelsError(f"audio has {n_channels} channels; accepted: {_CHANNEL_POLICY}")


def _check_duration(n_samples: int, sr: int, what: str = "audio") -> None:
    if n_samples == 0:
        raise AudioTooShortError(f"{what} is empty (0 samples); accepted: {_DURATION_POLICY}")
    duration = n_samples / sr
    if duration < MIN_DURATION_S:
        raise AudioTooShortError(
            f"{what} lasts {duration:.3f} s, shorter than the minimum; accepted: {_DURATION_POLICY}"
        )
    if duration > MAX_DURATION_S:
        raise AudioTooLongError(
            f"{what} lasts {duration:.1f} s, longer than the maximum; accepted: {_DURATION_POLICY}"
        )


def _check_finite(audio: np.ndarray) -> None:
    # max/min propagate NaN and keep +-inf, without a full-size temporary
    if np.isfinite(audio.max()) and np.isfinite(audio.min()):
        return
    finite = np.isfinite(audio)
    n_bad = int(audio.size - np.count_nonzero(finite))
    first = int(np.argmin(finite.ravel())) % audio.shape[-1]
    raise NonFiniteAudioError(
        f"audio contains {n_bad} NaN or infinite samples (first at sample {first}); "
        "accepted: finite sample values only"
    )


def _to_float32(audio: np.ndarray) -> np.ndarray:
    """Convert floats and PCM integers to float32 with full scale at 1.0."""
    kind = audio.dtype.kind
    if kind == "f":
        return audio.astype(np.float32, copy=False)
    if kind == "i":  # scaling by a power of two after the cast is exact
        scale = np.float32(2.0 ** -(8 * audio.dtype.itemsize - 1))
        return audio.astype(np.float32) * scale
    if audio.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        return ((audio.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    raise InvalidAudioArrayError(
        f"audio has dtype {audio.dtype}; accepted: float16/32/64, signed integer PCM "
        "(int8, int16, int32) or uint8 PCM"
    )


def as_float_audio(audio: Any, sr: Any) -> tuple[np.ndarray, int]:
    """Validate caller audio and return it as float32 ``(channels, samples)``.

    Parameters
    ----------
    audio : array-like, shape ``(samples,)`` (mono) or ``(channels, samples)``
        Float samples at full scale 1.0, or integer PCM (int8/16/32 scaled by 2**(bits-1),
        uint8 centred on 128).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    audio : np.ndarray, float32, shape ``(channels, samples)``, C-contiguous
        A new array unless the input already was float32, C-contiguous and 2-D.
    sr : int

    Raises
    ------
    InvalidSampleRateError, InvalidAudioArrayError, TooManyChannelsError,
    AudioTooShortError, AudioTooLongError, NonFiniteAudioError
    """
    rate = _check_sample_rate(sr)
    array = np.asarray(audio)
    if array.dtype.kind not in "fiu":
        raise InvalidAudioArrayError(
            f"audio has dtype {array.dtype}; accepted: float or integer PCM samples"
        )
    if array.ndim == 1:
        array = array[np.newaxis, :]
    elif array.ndim != 2:
        raise InvalidAudioArrayError(
            f"audio has shape {array.shape}; accepted: (samples,) for mono or "
            "(channels, samples) with 1 or 2 channels"
        )
    n_channels, n_samples = array.shape
    if n_channels == 0:
        raise InvalidAudioArrayError(
            f"audio has shape {array.shape} with no channels; accepted: (samples,) or "
            "(channels, samples) with 1 or 2 channels"
        )
    if n_channels > MAX_CHANNELS and n_samples <= MAX_CHANNELS:
        raise InvalidAudioArrayError(
            f"audio has shape {array.shape}, which looks like (samples, channels); "
            "accepted: (channels, samples), so pass audio.T"
        )
    _check_channels(n_channels)
    _check_duration(n_samples, rate)
    converted = np.ascontiguousarray(_to_float32(array))
    _check_finite(converted)
    return converted, rate


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Mono downmix ``(samples,)``: the mean of the channels (as ``librosa.to_mono``)."""
    return np.asarray(np.mean(audio, axis=0, dtype=np.float32))


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr ("HQ"), as ``librosa.resample(res_type="soxr_hq")``.

    ``y`` is ``(samples,)`` or ``(channels, samples)``; the output has
    ``ceil(samples * target_sr / orig_sr)`` samples (zero-padded at the end if soxr returns
    fewer), like librosa's ``fix_length``. float32.
    """
    if orig_sr == target_sr:
        return y
    out = soxr.resample(y.T, orig_sr, target_sr, quality="HQ").T  # soxr: (frames, channels)
    n_samples = math.ceil(y.shape[-1] * float(target_sr) / orig_sr)
    fixed = np.zeros((*y.shape[:-1], n_samples), dtype=np.float32)
    n_kept = min(n_samples, out.shape[-1])
    fixed[..., :n_kept] = out[..., :n_kept]
    return fixed


# -- files ------------------------------------------------------------------------------------


def _declared_riff_frames(path: Path) -> int | None:
    """Frames the RIFF/WAVE header declares (``data`` size / block align), or None if unknown.

    libsndfile silently shortens a WAV whose data chunk runs past the end of the file, so the
    declared length is read here to detect truncation and over-long headers.
    """
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"fmt ":
                fmt = handle.read(size + (size & 1))
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack("<H", fmt[12:14])[0]
            elif chunk_id == b"data":
                # 0 and 0xFFFFFFFF are placeholders written by streaming encoders.
                if block_align == 0 or size in (0, 0xFFFFFFFF):
                    return None
                return int(size // block_align)
            else:
                handle.seek(size + (size & 1), 1)


def _open_info(path: Path) -> Any:
    suffix = path.suffix.lower()
    accepted_suffixes = {ext for exts in ACCEPTED_EXTENSIONS.values() for ext in exts}
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", str(exc))
        if suffix in accepted_suffixes:
            raise CorruptFileError(
                f"{path.name} has a {suffix} name but cannot be decoded ({reason}); "
                f"accepted: valid {_ACCEPTED_TEXT} files"
            ) from None
        raise UnsupportedFormatError(
            f"{path.name} is not a recognised audio file ({reason}); accepted: {_ACCEPTED_TEXT}"
        ) from None
    if info.format not in ACCEPTED_EXTENSIONS:
        raise UnsupportedFormatError(
            f"{path.name} is a {info.format_info} file; accepted: {_ACCEPTED_TEXT}"
        )
    return info


def _decode(path: Path, n_channels: int, declared_frames: int) -> np.ndarray:
    """Decode to float32 ``(channels, frames)`` block by block (one copy of the audio)."""
    out = np.empty((n_channels, declared_frames), dtype=np.float32)
    overflow: list[np.ndarray] = []  # lossy formats may decode more than their estimate
    position = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                block = handle.read(_DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True)
                n = len(block)
                if n == 0:
                    break
                fit = max(0, min(n, declared_frames - position))
                out[:, position : position + fit] = block[:fit].T
                if fit < n:
                    overflow.append(np.ascontiguousarray(block[fit:].T))
                position += n
    except (sf.LibsndfileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", str(exc))
        raise TruncatedFileError(
            f"{path.name} stops decoding after {position} of {declared_frames} declared frames "
            f"({reason}): the file is truncated or damaged; accepted: complete audio files"
        ) from None
    if overflow:
        return np.concatenate([out, *overflow], axis=1)
    return out[:, :position]


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``(channels, samples)`` at its own sample rate.

    The header is checked first (format, channels, sample rate, declared duration), so an
    over-long file is rejected before anything is decoded. Accepted containers: WAV (incl.
    WAVE_FORMAT_EXTENSIBLE, RF64, W64), FLAC, OGG Vorbis/Opus, MP3, AIFF.

    Returns
    -------
    audio : np.ndarray, float32, shape ``(channels, samples)``
    sr : int, Hz

    Raises
    ------
    AudioFileNotFoundError, EmptyFileError, UnsupportedFormatError, CorruptFileError,
    TruncatedFileError, TooManyChannelsError, InvalidSampleRateError, AudioTooShortError,
    AudioTooLongError, NonFiniteAudioError
    """
    file = Path(path)
    if not file.exists():
        raise AudioFileNotFoundError(
            f"no such file: {file}; accepted: a path to an existing {_ACCEPTED_TEXT} file"
        )
    if not file.is_file():
        raise AudioFileNotFoundError(
            f"{file} is not a regular file; accepted: a path to a {_ACCEPTED_TEXT} file"
        )
    try:
        size = file.stat().st_size
        declared_riff = _declared_riff_frames(file)
    except OSError as exc:
        raise AudioFileNotFoundError(
            f"{file} cannot be opened for reading ({exc.strerror}); "
            f"accepted: a readable {_ACCEPTED_TEXT} file"
        ) from None
    if size == 0:
        raise EmptyFileError(f"{file.name} is empty (0 bytes); accepted: a {_ACCEPTED_TEXT} file")

    info = _open_info(file)
    _check_channels(info.channels)
    sr = _check_sample_rate(info.samplerate)
    declared = declared_riff if declared_riff is not None else info.frames
    if declared == 0:
        raise EmptyFileError(
            f"{file.name} contains no audio frames; accepted: {_DURATION_POLICY} of audio"
        )
    _check_duration(declared, sr, what=f"{file.name} (from its header)")
    if declared > info.frames:
        raise TruncatedFileError(
            f"{file.name} is truncated: its header declares {declared / sr:.2f} s but the file "
            f"holds only {info.frames / sr:.2f} s; accepted: complete audio files"
        )

    audio = _decode(file, info.channels, declared)
    decoded = audio.shape[1]
    tolerance = _LOSSY_LENGTH_TOLERANCE if info.format in _LOSSY_FORMATS else 0.0
    if decoded < declared * (1.0 - tolerance):
        raise TruncatedFileError(
            f"{file.name} is truncated: its header declares {declared / sr:.2f} s but only "
            f"{decoded / sr:.2f} s could be decoded; accepted: complete audio files"
        )
    _check_duration(decoded, sr, what=file.name)
    _check_finite(audio)
    return audio, sr


def load_pair(vocal: str | Path, instrumental: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """A vocal and its instrumental at the vocal's sample rate (the instrumental resampled).

    Returns
    -------
    vocal, instrumental : np.ndarray, float32, shape ``(channels, samples)``
    sr : int, Hz

    Raises
    ------
    AudioError
        As :func:`load_audio`, for either file.
    """
    vocal_audio, sr = load_audio(vocal)
    inst_audio, inst_sr = load_audio(instrumental)
    if inst_sr != sr:
        inst_audio = resample(inst_audio, inst_sr, sr)
    return vocal_audio, inst_audio, sr
