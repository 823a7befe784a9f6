"""features.onnx against ``extract_features``: known signals at 22.05, 44.1 and 48 kHz, mono
and stereo, within the per-family tolerances of ``mixai_ml.edge.parity`` (docs/features.md,
"In the browser")."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from synthetic_audio import click_track, music, noise, sine, tone_sequence

from mixai_inference import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, extract_features
from mixai_inference._rhythm import tempo_frequencies
from mixai_inference.audio import resample
from mixai_ml.edge import (
    STFT_METHODS,
    SUPPORTED_SAMPLE_RATES,
    build_feature_graph,
    write_edge_graphs,
)
from mixai_ml.edge._graph import FLOAT, INT64, Graph
from mixai_ml.edge._resample import resample_from
from mixai_ml.edge.feature_graph import OPSET, model_proto
from mixai_ml.edge.parity import FEATURE_FAMILIES, FeatureGraphs, outside_tolerance, soxr_mono

RATES = (22050, 44100, 48000)


def _signal(kind: str, sr: int) -> np.ndarray:
    """Stereo, 6-10 s: a tone, noise, clicks at 120 BPM, music between digital silence."""
    if kind == "sine":
        return sine(440.0, sr, 6.0)
    if kind == "noise":
        return noise(sr, 6.0)
    if kind == "clicks":
        return np.tile(click_track(120.0, sr, 10.0), (2, 1))
    pad = np.zeros((2, sr), dtype=np.float32)
    return np.concatenate([pad, music(sr, 5.0, seed=3), pad], axis=1)


@pytest.mark.parametrize("layout", ["stereo", "mono"])
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("kind", ["sine", "noise", "clicks", "silence_padded_music"])
def test_graph_equals_extract_features_on_identical_pcm(
    identical_pcm: FeatureGraphs, kind: str, sr: int, layout: str
) -> None:
    """Fed the very 22.05 kHz signal extract_features analyses, every value is within its
    family's tolerance: the graph computes the same thing."""
    audio = _signal(kind, sr)
    audio = audio[:1] if layout == "mono" else audio
    graph = identical_pcm.features(audio, sr, soxr_mono(audio, sr))
    assert graph.dtype == np.float32
    assert graph.shape == (len(FEATURE_NAMES),)
    assert outside_tolerance(graph, extract_features(audio, sr)) == []


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_clicks_at_a_known_tempo(graphs: FeatureGraphs, bpm: float) -> None:
    """Tempo lands on the autocorrelation lag nearest the click rate; beats agree."""
    sr = 44100
    audio = click_track(bpm, sr, 12.0)
    graph = dict(zip(FEATURE_NAMES, graphs.features(audio, sr).tolist(), strict=True))
    reference = dict(zip(FEATURE_NAMES, extract_features(audio, sr).tolist(), strict=True))
    lags = tempo_frequencies(344, 512, 22050)[1:]
    assert graph["tempo_bpm"] == reference["tempo_bpm"]
    assert abs(graph["tempo_bpm"] - bpm) <= np.abs(np.diff(lags))[np.argmin(abs(lags - bpm))]
    for stat in ("mean", "std", "min", "max"):
        name = f"beat_strength_{stat}"
        assert graph[name] == pytest.approx(reference[name], rel=1e-4, abs=1e-3)
    assert graph["beat_strength_mean"] > 1.0  # beats were found, on the clicks


@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_of_a_reference_tone(graphs: FeatureGraphs, channels: int) -> None:
    """EBU Tech 3341 case 1 (1 kHz at -23 dBFS, 20 s): -23 LUFS on two channels, 3 LU less
    on one; mono over several 10 s chunks (where a state bug once hid)."""
    audio = tone_sequence([(-23.0, 20.0)], 48000, channels=channels)
    graph = dict(zip(FEATURE_NAMES, graphs.features(audio, 48000).tolist(), strict=True))
    expected = -23.0 - (10 * np.log10(2) if channels == 1 else 0.0)
    assert graph["loudness_integrated_lufs"] == pytest.approx(expected, abs=0.05)
    assert graph["loudness_range_lu"] == pytest.approx(0.0, abs=0.01)
    assert graph["true_peak_dbtp"] == pytest.approx(-23.0, abs=0.01)  # the sine's amplitude
    measured_at_48k = [
        f for f in FEATURE_FAMILIES if f.name.startswith(("loudness", "true", "sample", "stereo"))
    ]
    graph_values = graphs.features(audio, 48000)
    assert outside_tolerance(graph_values, extract_features(audio, 48000), measured_at_48k) == []


@pytest.mark.parametrize(
    ("rate", "target"), [(44100, 22050), (48000, 22050), (44100, 16000), (48000, 16000)]
)
def test_the_graph_resamples_like_soxr(rate: int, target: int) -> None:
    """Sample for sample, edges and length included (odd lengths too)."""
    g = Graph("resample")
    y = g.input("y", FLOAT, [None])
    sr = g.input("sr", INT64, [])
    g.output(resample_from(g, y, sr, target, "float64"), "out", FLOAT, [None])
    session = ort.InferenceSession(model_proto(g, {}).SerializeToString())
    signal = (0.3 * np.random.default_rng(rate).standard_normal(3 * rate + 7)).astype(np.float32)
    ours = session.run(None, {"y": signal, "sr": np.array(rate, dtype=np.int64)})[0]
    expected = resample(signal, rate, target)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-6)


CONTRAST = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES if n.startswith("spectral_contrast")]


def assert_close(graph: np.ndarray, reference: np.ndarray, contrast_db: float = 0.01) -> None:
    """Every family within tolerance but spectral contrast, within ``contrast_db``: a valley
    next to the contrast floor, 100 dB under its frame's peak, still reads a little of the
    resamplers' (or a float32 transform's) rounding noise. Without the floor (feature
    schema 1.0) these deviations reached 4 dB (docs/features.md)."""
    assert [m for m in outside_tolerance(graph, reference) if "spectral contrast" not in m] == []
    assert np.abs(graph[CONTRAST] - reference[CONTRAST]).max() < contrast_db


def test_own_resampling_on_music(graphs: FeatureGraphs) -> None:
    """End to end: what a browser computes."""
    for sr in (44100, 48000):
        audio = music(sr, 8.0, seed=4)
        assert_close(graphs.features(audio, sr), extract_features(audio, sr))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("stft", STFT_METHODS)
def test_every_stft_implementation(stft: str, precision: str) -> None:
    """DFT operator, factored matrices and the Conv basis agree; float32 transforms too, their
    noise floor being 150 dB under each frame's peak, under the contrast floor."""
    if stft == "conv" and precision == "float64":
        with pytest.raises(ValueError, match="float32 only"):
            build_feature_graph(stft, precision, resampled_input=True)  # type: ignore[arg-type]
        return
    variant = FeatureGraphs(build_feature_graph(stft, precision, resampled_input=True))  # type: ignore[arg-type]
    audio = music(44100, 8.0, seed=4)
    graph = variant.features(audio, 44100, soxr_mono(audio, 44100))
    reference = extract_features(audio, 44100)
    if precision == "float64":
        assert outside_tolerance(graph, reference) == []
    else:
        assert_close(graph, reference, contrast_db=0.05)


def test_long_audio_spans_every_chunked_loop(graphs: FeatureGraphs) -> None:
    """30 s: several chunks of STFT frames, of resampling and of loudness blocks."""
    audio = music(48000, 30.0, seed=9)
    assert_close(graphs.features(audio, 48000), extract_features(audio, 48000))


def test_other_rates_are_refused(graphs: FeatureGraphs) -> None:
    audio = noise(32000, 4.0)
    with pytest.raises(ValueError, match="48000 Hz first"):
        graphs.features(audio, 32000)
    session = ort.InferenceSession(build_feature_graph().SerializeToString())
    raw = session.run(None, {"audio": audio, "sample_rate": np.array(32000, dtype=np.int64)})[0]
    assert np.isnan(raw).all()  # the graph itself flags it: every value NaN


def test_model_contract(tmp_path: object) -> None:
    paths = write_edge_graphs(tmp_path)  # type: ignore[arg-type]
    model = onnx.load(paths["features"])
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert OPSET >= 18
    assert [i.name for i in model.graph.input] == ["audio", "sample_rate"]
    assert [o.name for o in model.graph.output] == ["features"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["feature_names"]) == list(FEATURE_NAMES)
    assert meta["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    assert json.loads(meta["supported_sample_rates"]) == list(SUPPORTED_SAMPLE_RATES)
    alignment = onnx.load(paths["alignment"])
    assert [i.name for i in alignment.graph.input] == ["vocal", "instrumental", "sample_rate"]
    assert [o.name for o in alignment.graph.output] == ["alignment_features", "offset_ms"]
