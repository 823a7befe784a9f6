"""Errors raised for audio that the feature extractor refuses.

Every rejected input raises a subclass of :class:`AudioError` (itself a ``ValueError``)
whose message says what was wrong and what is accepted. Callers that record failures
(the Kedro ``features`` pipeline, ``mixai-infer``) store the class name and the message.

The limits quoted in the messages live in :mod:`mixai_inference.audio`.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
    "AudioTooShortError",
    "CorruptFileError",
    "EmptyFileError",
    "InvalidAudioArrayError",
    "InvalidSampleRateError",
    "NonFiniteAudioError",
    "TooManyChannelsError",
    "TruncatedFileError",
    "UnsupportedFormatError",
]


class AudioError(ValueError):
    """Base class: the input cannot be analysed. The message says why and what is accepted."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The path does not exist, is not a regular file, or cannot be opened for reading."""


class EmptyFileError(AudioError):
    """The file has zero bytes or declares no audio frames."""


class UnsupportedFormatError(AudioError):
    """The file is not in one of the accepted containers (WAV, FLAC, OGG, MP3, AIFF)."""


class CorruptFileError(AudioError):
    """The file claims an accepted format but its header or data cannot be decoded."""


class TruncatedFileError(CorruptFileError):
    """Decoding ended before the length the header declares (cut-off upload or damaged data)."""


class NonFiniteAudioError(AudioError):
    """The samples contain NaN or infinity."""


class AudioTooShortError(AudioError):
    """The audio is empty or shorter than the minimum duration."""


class AudioTooLongError(AudioError):
    """The audio is longer than the maximum duration (checked from the header before decoding)."""


class InvalidAudioArrayError(AudioError):
    """The array has a shape or dtype that is not audio: accepted are 1-D ``(samples,)`` or
    2-D ``(channels, samples)`` arrays of floats or signed integers."""


class TooManyChannelsError(AudioError):
    """More than two channels: only mono and stereo are accepted."""


class InvalidSampleRateError(AudioError):
    """The sample rate is not a whole number of hertz inside the accepted range."""
