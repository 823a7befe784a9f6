"""Golden vectors for the browser side: clip recipes, and the features Python computes.

A browser test cannot read numpy's random generators, so every clip here is a recipe of
elementary formulas a TypeScript port reproduces sample for sample (evaluated in float64,
stored as float32):

* ``sine``: ``amplitude * sin(2 pi freq t)``, ``t = n / sr``;
* ``chirp``: ``amplitude * sin(2 pi (f0 t + (f1 - f0) t^2 / (2 duration)))``;
* ``clicks``: at every ``k * 60 / bpm`` s before the last 0.1 s (or at each of
  ``onsets_s``), from sample ``round(sr * onset)``, a 1 kHz burst
  ``0.8 sin(2 pi 1000 t) exp(-t / 0.01)`` of ``round(0.1 sr)`` samples, added (cut at
  the end);
* ``noise``: uniform white noise from xorshift32 (``x ^= x << 13; x ^= x >>> 17;
  x ^= x << 5`` on unsigned 32-bit integers, starting from ``seed``), sample
  ``amplitude * (2 x / 2^32 - 1)``;
* ``mix``: the sum of ``parts`` (recipes without ``sr`` / ``duration_s``);
* ``padded``: ``inner`` with ``pad_s`` seconds of digital silence before and after.

A clip has ``sr``, ``duration_s`` (before padding) and one recipe per channel
(``channels``: a list of 1 or 2 recipes). :func:`golden_vectors` returns, for each clip,
``extract_features`` (the reference) and the feature graph's own output, and for pairs of
clips the alignment features and offset; with the tolerances of docs/features.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, extract_features
from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES, estimate_alignment
from mixai_ml.edge.alignment_graph import build_alignment_graph
from mixai_ml.edge.feature_graph import build_feature_graph
from mixai_ml.edge.parity import ALIGNMENT_FAMILIES, FEATURE_FAMILIES, Family, FeatureGraphs

__all__ = [
    "GOLDEN_CLIPS",
    "GOLDEN_PAIRS",
    "golden_vectors",
    "render",
    "write_golden_vectors",
    "xorshift32",
]

Recipe = Mapping[str, Any]


def _sine(freq: float, amplitude: float) -> dict[str, Any]:
    return {"kind": "sine", "freq": freq, "amplitude": amplitude}


def _noise(seed: int, amplitude: float) -> dict[str, Any]:
    return {"kind": "noise", "seed": seed, "amplitude": amplitude}


def _mix(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "mix", "parts": list(parts)}


def _clip(name: str, sr: int, duration_s: float, *channels: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "sr": sr, "duration_s": duration_s, "channels": list(channels)}


_CHORD = _mix(*(_sine(f, 0.15) for f in (261.63, 329.63, 392.0)))
GOLDEN_CLIPS: tuple[dict[str, Any], ...] = (
    _clip("sine-440-stereo-44k", 44100, 6.0, _sine(440.0, 0.5), _sine(440.0, 0.5)),
    _clip("sine-1k-mono-48k", 48000, 6.0, _sine(1000.0, 0.25)),
    _clip("noise-stereo-48k", 48000, 5.0, _noise(1, 0.3), _noise(2, 0.3)),
    _clip("clicks-120-mono-22k", 22050, 10.0, {"kind": "clicks", "bpm": 120.0}),
    _clip(
        "clicks-96-over-noise-stereo-44k",
        44100,
        10.0,
        _mix({"kind": "clicks", "bpm": 96.0}, _noise(3, 0.01)),
        _mix({"kind": "clicks", "bpm": 96.0}, _noise(4, 0.01)),
    ),
    _clip(
        "chirp-mono-44k", 44100, 6.0, {"kind": "chirp", "f0": 60.0, "f1": 10000.0, "amplitude": 0.5}
    ),
    _clip(
        "padded-chord-stereo-48k",
        48000,
        5.0,
        {"kind": "padded", "pad_s": 1.0, "inner": _CHORD},
        {"kind": "padded", "pad_s": 1.0, "inner": _noise(5, 0.1)},
    ),
)

_PATTERN_S = (0.5, 1.3, 1.7, 2.9, 3.2, 4.6, 5.0, 5.9, 7.1)  # irregular: one best lag


def _pattern(shift_s: float, seed: int) -> dict[str, Any]:
    return _mix(
        {"kind": "clicks", "onsets_s": [t - shift_s for t in _PATTERN_S]}, _noise(seed, 0.001)
    )


#: A vocal and an instrumental sharing an onset pattern, the vocal ``true_offset_ms`` early
#: (so ``estimate_alignment`` answers that offset).
GOLDEN_PAIRS: tuple[dict[str, Any], ...] = (
    {
        "name": "pattern-shifted-250ms-44k",
        "sr": 44100,
        "duration_s": 8.0,
        "vocal": _pattern(0.25, 7),
        "instrumental": _pattern(0.0, 8),
        "true_offset_ms": 250.0,
    },
)


def xorshift32(seed: int, n: int) -> np.ndarray:
    """``n`` successive states of Marsaglia's xorshift32 from ``seed`` (uint32, seed != 0)."""
    if not 0 < seed < 2**32:
        raise ValueError("the xorshift32 seed must be in 1 .. 2**32 - 1")
    out = np.empty(n, dtype=np.uint64)
    x = seed
    for i in range(n):  # sequential by nature; clips are seconds long
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def _signal(recipe: Recipe, sr: int, n: int) -> np.ndarray:
    """One channel of a recipe, float64 ``(n,)``."""
    t = np.arange(n) / sr
    kind = recipe["kind"]
    if kind == "sine":
        return float(recipe["amplitude"]) * np.sin(2 * np.pi * recipe["freq"] * t)
    if kind == "chirp":
        duration = n / sr
        f0, f1 = recipe["f0"], recipe["f1"]
        return float(recipe["amplitude"]) * np.sin(
            2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) * t**2)
        )
    if kind == "noise":
        states = xorshift32(int(recipe["seed"]), n).astype(np.float64)
        return float(recipe["amplitude"]) * (2.0 * states / 2.0**32 - 1.0)
    if kind == "clicks":
        burst_t = np.arange(round(0.1 * sr)) / sr
        burst = 0.8 * np.sin(2 * np.pi * 1000.0 * burst_t) * np.exp(-burst_t / 0.01)
        out = np.zeros(n)
        onsets = recipe.get("onsets_s")
        if onsets is None:
            onsets = np.arange(0.0, n / sr - 0.1, 60.0 / recipe["bpm"])
        for onset in onsets:
            first = round(onset * sr)
            stop = min(n, first + len(burst))
            out[first:stop] += burst[: stop - first]
        return out
    if kind == "mix":
        return np.sum([_signal(part, sr, n) for part in recipe["parts"]], axis=0)
    if kind == "padded":
        pad = round(recipe["pad_s"] * sr)
        return np.concatenate(
            [np.zeros(pad), _signal(recipe["inner"], sr, n - 2 * pad), np.zeros(pad)]
        )
    raise ValueError(f"unknown recipe kind {kind!r}")


def _length(recipe: Recipe, sr: int, duration_s: float) -> int:
    """Samples of a channel: ``round(sr * duration_s)``, plus the padding of ``padded``."""
    pad = round(recipe["pad_s"] * sr) if recipe["kind"] == "padded" else 0
    return round(sr * duration_s) + 2 * pad


def render(clip: Mapping[str, Any]) -> np.ndarray:
    """The float32 ``(channels, samples)`` audio of a clip (see the module docstring)."""
    sr, duration = int(clip["sr"]), float(clip["duration_s"])
    channels = clip["channels"]
    n = _length(channels[0], sr, duration)
    if any(_length(recipe, sr, duration) != n for recipe in channels):
        raise ValueError("every channel of a clip must have the same length (same padding)")
    return np.stack([_signal(recipe, sr, n) for recipe in channels]).astype(np.float32)


def _tolerances(families: Sequence[Family]) -> list[dict[str, Any]]:
    return [
        {"family": f.name, "names": list(f.names), "atol": f.atol, "rtol": f.rtol, "unit": f.unit}
        for f in families
    ]


def golden_vectors(
    clips: Sequence[Mapping[str, Any]] = GOLDEN_CLIPS,
    pairs: Sequence[Mapping[str, Any]] = GOLDEN_PAIRS,
    graphs: FeatureGraphs | None = None,
) -> dict[str, Any]:
    """The golden vectors as a JSON-ready dict.

    ``clips[*].features`` is ``extract_features`` (what the browser must equal within
    ``tolerances``, resampling aside: see docs/features.md) and ``graph_features`` the
    feature graph's own output on the clip (what onnxruntime-web must reproduce to
    float32 rounding); ``pairs[*]`` likewise for the aligner. ``graphs`` defaults to
    freshly built graphs (:func:`~mixai_ml.edge.write_edge_graphs`' defaults).
    """
    graphs = graphs or FeatureGraphs(build_feature_graph(), build_alignment_graph())
    clip_rows = []
    for clip in clips:
        audio = render(clip)
        clip_rows.append(
            {
                **clip,
                "features": extract_features(audio, clip["sr"]).tolist(),
                "graph_features": graphs.features(audio, clip["sr"]).tolist(),
            }
        )
    pair_rows = []
    for pair in pairs:
        vocal, instrumental = (
            render({**pair, "channels": [pair[part]]}) for part in ("vocal", "instrumental")
        )
        reference = estimate_alignment(vocal, instrumental, pair["sr"])
        features, offset = graphs.alignment(vocal, instrumental, pair["sr"])
        pair_rows.append(
            {
                **pair,
                "offset_ms": reference.offset_ms,
                "alignment_features": reference.features.tolist(),
                "graph_offset_ms": offset,
                "graph_alignment_features": features.tolist(),
            }
        )
    return {
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "alignment_feature_names": list(ALIGNMENT_FEATURE_NAMES),
        "feature_tolerances": _tolerances(FEATURE_FAMILIES),
        "alignment_tolerances": _tolerances(ALIGNMENT_FAMILIES),
        "clips": clip_rows,
        "pairs": pair_rows,
    }


def write_golden_vectors(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`golden_vectors` as JSON (a few tens of kB) to ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(golden_vectors(**kwargs), indent=1) + "\n")
    return out
