"""MIXAI slim inference runtime (numpy + onnxruntime + soundfile + soxr).

Importing the package loads numpy, soundfile and soxr only; keep heavier imports (such as
onnxruntime) inside the functions that need them, so that a cold start stays fast.
"""

from mixai_inference._version import __version__
from mixai_inference.alignment import (
    ALIGNMENT_CONFIG,
    ALIGNMENT_FEATURE_NAMES,
    Alignment,
    estimate_alignment,
)
from mixai_inference.audio import load_audio
from mixai_inference.bundle import BundleError, Manifest, read_manifest, write_bundle
from mixai_inference.errors import (
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
)
from mixai_inference.features import (
    FEATURE_CONFIG,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    extract_features,
)
from mixai_inference.flags import Flags, resolve_flags
from mixai_inference.loudness import measure_loudness
from mixai_inference.metrics import MetricRecord, MetricsSink
from mixai_inference.predictor import Predictor
from mixai_inference.results import AlignResult, Prediction, Provenance
from mixai_inference.routing import assign_variant

__all__ = [
    "ALIGNMENT_CONFIG",
    "ALIGNMENT_FEATURE_NAMES",
    "FEATURE_CONFIG",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_VERSION",
    "AlignResult",
    "Alignment",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
    "AudioTooShortError",
    "BundleError",
    "CorruptFileError",
    "EmptyFileError",
    "Flags",
    "InvalidAudioArrayError",
    "InvalidSampleRateError",
    "Manifest",
    "MetricRecord",
    "MetricsSink",
    "NonFiniteAudioError",
    "Prediction",
    "Predictor",
    "Provenance",
    "TooManyChannelsError",
    "TruncatedFileError",
    "UnsupportedFormatError",
    "__version__",
    "assign_variant",
    "estimate_alignment",
    "extract_features",
    "load_audio",
    "measure_loudness",
    "read_manifest",
    "resolve_flags",
    "write_bundle",
]
