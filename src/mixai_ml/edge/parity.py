"""Run the edge graphs with onnxruntime and compare them with ``mixai_inference``.

``FeatureGraphs`` holds onnxruntime sessions of ``features.onnx`` and ``alignment.onnx``
and feeds them what a browser would: the decoded audio at its own rate. Given
:func:`soxr_mono` as well, the feature graph analyses the very 22.05 kHz signal
``extract_features`` does, which measures the graph alone, apart from resampling.

``FEATURE_FAMILIES`` / ``ALIGNMENT_FAMILIES`` hold the documented tolerance of each family
(``|graph - reference| <= atol + rtol |reference|``); :func:`deviations` summarises a set of
comparisons per family, and :func:`deviation_table` renders it as Markdown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from mixai_inference import FEATURE_CONFIG, FEATURE_NAMES
from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES
from mixai_inference.audio import as_float_audio, resample, to_mono
from mixai_inference.features import extract_features, features_of_resampled

__all__ = [
    "ALIGNMENT_FAMILIES",
    "FEATURE_FAMILIES",
    "RESAMPLER_PRECISION",
    "Family",
    "FamilyDeviation",
    "FeatureGraphs",
    "deviation_table",
    "deviations",
    "outside_tolerance",
    "resampling_sensitivity",
    "resampling_variants",
    "soxr_mono",
    "within_tolerance",
]

#: The precision of soxr's "HQ" setting, which ``extract_features`` resamples with: 20 bits
#: (``SOXR_HQ`` is soxr's ``SOXR_20_BITQ``), i.e. 2⁻²⁰ ≈ 9.5e-7 of full scale. The graph's
#: resampler agrees with soxr to 9e-7 on every sample: within that precision, and no closer.
RESAMPLER_PRECISION = 2.0**-20


def soxr_mono(audio: Any, sr: Any) -> np.ndarray:
    """The 22.05 kHz signal ``extract_features`` analyses: soxr HQ of the mono downmix."""
    samples, rate = as_float_audio(audio, sr)
    return resample(to_mono(samples), rate, FEATURE_CONFIG["sample_rate"])[np.newaxis, :]


def resampling_variants(audio: Any, sr: Any, *, seed: int = 0) -> list[np.ndarray]:
    """The features of soxr's resampled signal perturbed within soxr's own precision.

    ``extract_features`` analyses soxr's 22.05 kHz signal ``y``, which soxr computes to
    :data:`RESAMPLER_PRECISION` (20 bits). A feature that reads content below that level
    (spectral contrast valleys in the resampler's stop band, frames next to digital silence,
    the far-from-peak bins of pure tones) is not defined more closely than any two
    resamplers of that precision agree. The variants are the features (float32, like
    ``extract_features``) of ``y`` plus and minus white noise within ±2⁻²⁰, and of ``y`` with
    samples within 2⁻²⁰ of 0 set to 0 (the graph's exact zeros where soxr leaves residue).
    Audio already at 22.05 kHz is not resampled on either side: no variants.
    """
    samples, rate = as_float_audio(audio, sr)
    target = FEATURE_CONFIG["sample_rate"]
    if rate == target:
        return []
    y = resample(to_mono(samples), rate, target)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-RESAMPLER_PRECISION, RESAMPLER_PRECISION, y.shape).astype(np.float32)
    flushed = np.where(np.abs(y) < RESAMPLER_PRECISION, np.float32(0), y)
    return [
        features_of_resampled(samples, rate, perturbed)
        for perturbed in (y + noise, y - noise, flushed)
    ]


def resampling_sensitivity(audio: Any, sr: Any, *, seed: int = 0) -> np.ndarray:
    """How far each feature moves under :func:`resampling_variants`: the largest
    ``|feature(variant) - feature(y)|`` per value, float64 ``(len(FEATURE_NAMES),)``."""
    samples, rate = as_float_audio(audio, sr)
    reference = extract_features(samples, rate).astype(np.float64)
    spread = np.zeros_like(reference)
    for variant in resampling_variants(samples, rate, seed=seed):
        spread = np.maximum(spread, np.abs(variant.astype(np.float64) - reference))
    return spread


def _session(model: onnx.ModelProto | bytes | str | Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class FeatureGraphs:
    """onnxruntime sessions of the feature and alignment graphs.

    Parameters
    ----------
    features, alignment : ModelProto, serialized bytes or path (either may be None); a
        feature graph built with ``resampled_input=True`` takes ``resampled`` audio.
    threads : int
        onnxruntime intra-op threads (1 = comparable with the single-threaded numpy code).
    """

    def __init__(
        self,
        features: onnx.ModelProto | bytes | str | Path | None = None,
        alignment: onnx.ModelProto | bytes | str | Path | None = None,
        threads: int = 1,
    ) -> None:
        self._features = _session(features, threads) if features is not None else None
        self._alignment = _session(alignment, threads) if alignment is not None else None

    @staticmethod
    def _checked(session: ort.InferenceSession, audio: Any, sr: Any) -> tuple[np.ndarray, int]:
        samples, rate = as_float_audio(audio, sr)
        supported = json.loads(
            session.get_modelmeta().custom_metadata_map["supported_sample_rates"]
        )
        if rate not in supported:
            raise ValueError(
                f"the graph takes audio at {', '.join(map(str, supported))} Hz, not {rate} Hz: "
                "resample it to 48000 Hz first (a browser decodes it at that rate)"
            )
        return samples, rate

    def feature_inputs(
        self, audio: Any, sr: Any, resampled: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The feed of ``features.onnx`` (audio validated like ``extract_features``)."""
        if self._features is None:
            raise ValueError("no feature graph was given")
        samples, rate = self._checked(self._features, audio, sr)
        feed = {"audio": samples, "sample_rate": np.array(rate, dtype=np.int64)}
        if resampled is not None:
            feed["audio_resampled"] = np.atleast_2d(np.asarray(resampled, dtype=np.float32))
        return feed

    def features(self, audio: Any, sr: Any, resampled: np.ndarray | None = None) -> np.ndarray:
        """``features.onnx`` on ``audio``: float32 ``(len(FEATURE_NAMES),)``.

        ``resampled``: the audio at ``FEATURE_CONFIG["sample_rate"]`` to analyse instead of
        the graph's own resampling, e.g. :func:`soxr_mono` (what ``extract_features``
        analyses) to measure the graph alone.
        """
        feed = self.feature_inputs(audio, sr, resampled)
        assert self._features is not None
        values: np.ndarray = self._features.run(None, feed)[0]
        return values

    def alignment(self, vocal: Any, instrumental: Any, sr: Any) -> tuple[np.ndarray, float]:
        """``alignment.onnx`` on a pair: ``(features (23,), offset_ms)``."""
        if self._alignment is None:
            raise ValueError("no alignment graph was given")
        vocal_audio, rate = self._checked(self._alignment, vocal, sr)
        instrumental_audio, _ = self._checked(self._alignment, instrumental, sr)
        features, offset = self._alignment.run(
            None,
            {
                "vocal": vocal_audio,
                "instrumental": instrumental_audio,
                "sample_rate": np.array(rate, dtype=np.int64),
            },
        )
        return features, float(offset)


@dataclass(frozen=True)
class Family:
    """A group of values with one tolerance: ``|graph - ref| <= atol + rtol |ref|``."""

    name: str
    names: tuple[str, ...]
    unit: str
    atol: float
    rtol: float
    limited_by: str  # what keeps the graph from agreeing more closely

    def within(
        self, graph: np.ndarray, reference: np.ndarray, sensitivity: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """Element-wise: ``graph`` within tolerance of ``reference`` (NaN only matches NaN);
        ``sensitivity`` (e.g. :func:`resampling_sensitivity`) widens each value's tolerance."""
        graph, reference = np.asarray(graph, np.float64), np.asarray(reference, np.float64)
        tolerance = self.atol + self.rtol * np.abs(reference) + np.asarray(sensitivity)
        close = np.abs(graph - reference) <= tolerance
        both_nan = np.isnan(graph) & np.isnan(reference)
        return np.asarray(close | both_nan)

    def tolerance_text(self) -> str:
        parts = [f"{self.atol:g} {self.unit}".strip()] if self.atol else []
        if self.rtol:
            parts.append(f"{self.rtol:g} relative")
        return " + ".join(parts)


def _prefixed(names: Sequence[str], *prefixes: str) -> tuple[str, ...]:
    return tuple(n for n in names if n.startswith(prefixes))


def _families(
    specs: Iterable[tuple[str, Sequence[str], str, float, float, str]], names: Sequence[str]
) -> tuple[Family, ...]:
    families = tuple(
        Family(name, tuple(members), unit, atol, rtol, why)
        for name, members, unit, atol, rtol, why in specs
    )
    covered = [n for f in families for n in f.names]
    if sorted(covered) != sorted(names):
        raise AssertionError("families must cover every name exactly once")
    return families


_F32 = "float32 arithmetic"
_STFT = "float32 spectra from a float64 transform, as in mixai_inference; float32 reductions"

FEATURE_FAMILIES: tuple[Family, ...] = _families(
    [
        (
            "spectral centroid",
            _prefixed(FEATURE_NAMES, "spectral_centroid"),
            "Hz",
            0.01,
            1e-5,
            _STFT,
        ),
        (
            "spectral bandwidth",
            _prefixed(FEATURE_NAMES, "spectral_bandwidth"),
            "Hz",
            0.01,
            1e-5,
            _STFT,
        ),
        (
            "spectral roll-off",
            _prefixed(FEATURE_NAMES, "spectral_rolloff"),
            "Hz",
            0.01,
            1e-5,
            "a frame's roll-off bin can flip at a threshold tie",
        ),
        ("spectral flux", _prefixed(FEATURE_NAMES, "spectral_flux"), "dB", 1e-3, 1e-4, _STFT),
        (
            "spectral contrast",
            _prefixed(FEATURE_NAMES, "spectral_contrast"),
            "dB",
            1e-3,
            1e-4,
            _STFT,
        ),
        (
            "zero-crossing rate",
            _prefixed(FEATURE_NAMES, "zero_crossing_rate"),
            "",
            1e-7,
            1e-5,
            "exact counts; float32 statistics",
        ),
        ("RMS", _prefixed(FEATURE_NAMES, "rms_"), "", 1e-7, 1e-4, _F32),
        (
            "beat strength",
            _prefixed(FEATURE_NAMES, "beat_strength"),
            "dB",
            1e-3,
            1e-4,
            "same beat frames; float32 flux",
        ),
        ("MFCC", _prefixed(FEATURE_NAMES, "mfcc"), "dB", 1e-3, 1e-4, _STFT),
        ("chroma", _prefixed(FEATURE_NAMES, "chroma"), "", 1e-5, 1e-4, _STFT),
        ("stereo correlation / width", _prefixed(FEATURE_NAMES, "stereo_"), "", 1e-5, 1e-4, _F32),
        ("tempo", ("tempo_bpm",), "BPM", 0.0, 1e-6, "the same autocorrelation lag"),
        (
            "loudness (integrated, max momentary, max short-term)",
            (
                "loudness_integrated_lufs",
                "loudness_momentary_max_lufs",
                "loudness_short_term_max_lufs",
            ),
            "LU",
            2e-3,
            0.0,
            "block IIR in float32 (exact algebra)",
        ),
        ("loudness range", ("loudness_range_lu",), "LU", 2e-3, 0.0, "block IIR in float32"),
        ("true peak", ("true_peak_dbtp",), "dB", 1e-3, 0.0, _F32),
        (
            "sample peak, crest factor",
            ("sample_peak_dbfs", "crest_factor_db"),
            "dB",
            1e-3,
            0.0,
            _F32,
        ),
        ("band energy", _prefixed(FEATURE_NAMES, "band_energy"), "dB", 1e-3, 0.0, _STFT),
    ],
    FEATURE_NAMES,
)

ALIGNMENT_FAMILIES: tuple[Family, ...] = _families(
    [
        (
            "offset",
            ("offset_ms", "offset_margin_ms", "gcc_phat_onset_disagreement_ms"),
            "ms",
            0.01,
            0.0,
            "float32 peak interpolation",
        ),
        (
            "onset cross-correlation",
            _prefixed(ALIGNMENT_FEATURE_NAMES, "xcorr"),
            "",
            1e-3,
            1e-4,
            _STFT,
        ),
        (
            "segment agreement",
            ("segment_agreement_ratio", "segment_offset_spread_ms"),
            "",
            0.01,
            0.0,
            "float32 peak interpolation",
        ),
        (
            "onset rates, activity",
            (
                "vocal_onset_rate_hz",
                "instrumental_onset_rate_hz",
                "vocal_activity_ratio",
                "instrumental_activity_ratio",
            ),
            "",
            1e-4,
            1e-4,
            "threshold counts",
        ),
        (
            "durations, levels, overlap",
            (
                "vocal_duration_s",
                "instrumental_duration_s",
                "vocal_rms_dbfs",
                "instrumental_rms_dbfs",
                "overlap_ratio",
            ),
            "",
            1e-4,
            1e-5,
            _F32,
        ),
        (
            "GCC-PHAT",
            ("gcc_phat_peak", "gcc_phat_peak_to_sidelobe_ratio", "gcc_phat_used"),
            "",
            1e-3,
            1e-3,
            "float32 resampling and peaks",
        ),
    ],
    ALIGNMENT_FEATURE_NAMES,
)


@dataclass(frozen=True)
class FamilyDeviation:
    """Deviation of one family over a set of comparisons."""

    family: Family
    n_values: int
    n_within: int
    max_abs: float
    max_rel: float  # |d| / max(|ref|, 1e-12)

    @property
    def share_within(self) -> float:
        return self.n_within / self.n_values if self.n_values else 1.0


def _columns(families: Sequence[Family], names: Sequence[str]) -> list[list[int]]:
    column = {name: i for i, name in enumerate(names)}
    return [[column[n] for n in family.names] for family in families]


def deviations(
    graph: np.ndarray,
    reference: np.ndarray,
    families: Sequence[Family] = FEATURE_FAMILIES,
    names: Sequence[str] = FEATURE_NAMES,
    sensitivity: np.ndarray | None = None,
) -> list[FamilyDeviation]:
    """Per-family deviation of ``graph`` from ``reference``, both ``(n_clips, len(names))``;
    ``sensitivity`` (same shape) widens the tolerances (:func:`resampling_sensitivity`)."""
    graph = np.atleast_2d(np.asarray(graph, dtype=np.float64))
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    widen = np.zeros_like(reference) if sensitivity is None else np.atleast_2d(sensitivity)
    out = []
    for family, index in zip(families, _columns(families, names), strict=True):
        g, r = graph[:, index], reference[:, index]
        within = family.within(g, r, widen[:, index])
        diff = np.where(within, np.nan_to_num(np.abs(g - r)), np.abs(g - r))
        diff[np.isnan(diff)] = np.inf  # NaN on one side only
        out.append(
            FamilyDeviation(
                family=family,
                n_values=int(diff.size),
                n_within=int(np.count_nonzero(within)),
                max_abs=float(diff.max(initial=0.0)),
                max_rel=float((diff / np.fmax(np.abs(r), 1e-12)).max(initial=0.0)),
            )
        )
    return out


def within_tolerance(
    graph: np.ndarray,
    reference: np.ndarray,
    families: Sequence[Family] = FEATURE_FAMILIES,
    names: Sequence[str] = FEATURE_NAMES,
    sensitivity: np.ndarray | None = None,
) -> np.ndarray:
    """Element-wise for one vector ``graph`` ``(len(names),)``: within its family's
    tolerance of ``reference`` (widened by ``sensitivity``); values of no family are not
    compared (True)."""
    graph, reference = np.asarray(graph, np.float64), np.asarray(reference, np.float64)
    widen = np.zeros(len(names)) if sensitivity is None else np.asarray(sensitivity)
    within = np.ones(len(names), dtype=bool)
    for family, index in zip(families, _columns(families, names), strict=True):
        within[index] = family.within(graph[index], reference[index], widen[index])
    return within


def outside_tolerance(
    graph: np.ndarray,
    reference: np.ndarray,
    families: Sequence[Family] = FEATURE_FAMILIES,
    names: Sequence[str] = FEATURE_NAMES,
    sensitivity: np.ndarray | None = None,
) -> list[str]:
    """Every value of one vector ``graph`` outside its family's tolerance, described."""
    graph, reference = np.asarray(graph), np.asarray(reference)
    within = within_tolerance(graph, reference, families, names, sensitivity)
    family_of = {name: family.name for family in families for name in family.names}
    return [
        f"{names[k]} ({family_of[names[k]]}): graph {graph[k]:.7g}, numpy {reference[k]:.7g}"
        for k in map(int, np.flatnonzero(~within))
    ]


def deviation_table(rows: Sequence[FamilyDeviation]) -> str:
    """Markdown table: family, tolerance, largest deviations, share within tolerance."""
    lines = [
        "| family | tolerance | largest deviation | largest relative | within tolerance |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        f = row.family
        lines.append(
            f"| {f.name} | {f.tolerance_text()} | {row.max_abs:.2g} {f.unit} | {row.max_rel:.1e} "
            f"| {100 * row.share_within:.2f} % ({row.n_within}/{row.n_values}) |"
        )
    total = sum(r.n_values for r in rows)
    within = sum(r.n_within for r in rows)
    lines.append(f"| **all** | | | | **{100 * within / max(total, 1):.2f} %** ({within}/{total}) |")
    return "\n".join(lines)
