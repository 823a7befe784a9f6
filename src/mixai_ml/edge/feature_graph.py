"""``features.onnx``: the 175 track features of ``mixai_inference.extract_features`` as one
ONNX graph (opset 18) that onnxruntime and onnxruntime-web run.

Inputs (see :data:`FEATURE_GRAPH_INPUTS`):

* ``audio`` float32 ``(channels, samples)``, channels 1 or 2, at ``sample_rate``: the
  decoded file at its own rate, as ``extract_features`` receives it;
* ``sample_rate`` int64 scalar, one of :data:`SUPPORTED_SAMPLE_RATES` (22.05, 44.1 or
  48 kHz; any other rate makes every feature NaN: a browser decodes such files at 48 kHz).

Like ``extract_features``, the graph measures loudness, peaks, crest factor and stereo
image on ``audio`` and resamples its mono downmix to ``FEATURE_CONFIG["sample_rate"]``
with soxr's own filter (:mod:`~mixai_ml.edge._resample`) for every other family.

Output: ``features`` float32 ``(175,)`` in ``FEATURE_NAMES`` order.

Per family (details in docs/features.md, "In the browser"):

* one STFT (three interchangeable implementations, :data:`~mixai_ml.edge._dsp.STFT_METHODS`)
  computed in chunks of frames by a Loop; centroid, bandwidth, roll-off, contrast (TopK per
  octave band), mel / chroma / band filterbanks as constant matrices (the very arrays
  ``mixai_inference`` uses), RMS from the frames' energy;
* MFCC, spectral flux, chroma normalisation after the loop (``top_db`` needs the global max);
* zero-crossing rate from sign changes, counted per hop;
* tempo and beats: :mod:`mixai_ml.edge._rhythm`;
* loudness, peaks, stereo image: :mod:`mixai_ml.edge._loudness`.

A browser's own resampler (Web Audio) would move the spectral families far beyond these
tolerances (its anti-aliasing filter differs from soxr's near 11 kHz), hence the resampling
inside the graph.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import helper

from mixai_inference import FEATURE_CONFIG, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from mixai_inference._spectral import (
    amplitude_ratio,
    chroma_filterbank,
    contrast_bands,
    dct_matrix,
    fft_frequencies,
    mel_filterbank,
)
from mixai_inference.loudness import PEAK_FLOOR_DB
from mixai_ml.edge import _rhythm
from mixai_ml.edge._dsp import (
    TINY32,
    FrameFunction,
    StftMethod,
    StftPrecision,
    dim,
    frame_loop,
    power_db,
    power_to_db,
    select_or,
    stats,
    take,
    vec,
)
from mixai_ml.edge._graph import FLOAT, INT64, Graph
from mixai_ml.edge._loudness import native_features
from mixai_ml.edge._resample import RESAMPLED_RATES, is_one_of, resample_from

__all__ = [
    "FEATURE_GRAPH_INPUTS",
    "OPSET",
    "SUPPORTED_SAMPLE_RATES",
    "build_feature_graph",
    "model_proto",
]

#: Rates ``audio`` may have: the feature rate and the rates resampled exactly like soxr.
SUPPORTED_SAMPLE_RATES: tuple[int, ...] = tuple(
    sorted({FEATURE_CONFIG["sample_rate"], *RESAMPLED_RATES})
)
OPSET = 18
IR_VERSION = 9  # onnxruntime >= 1.15 and onnxruntime-web read it
CHUNK_FRAMES = 256  # STFT frames per Loop iteration

#: Input name -> what it holds (also in the graph's metadata).
FEATURE_GRAPH_INPUTS: dict[str, str] = {
    "audio": "float32 (channels, samples), 1 or 2 channels, full scale 1.0, at sample_rate",
    "sample_rate": "int64 scalar, Hz, one of supported_sample_rates",
}


def model_proto(g: Graph, metadata: dict[str, str]) -> onnx.ModelProto:
    """The checked model of a root graph, with string metadata."""
    model = helper.make_model(
        g.proto(), opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mixai_ml.edge"
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _spectral_frames(sr: int, cfg: dict[str, Any]) -> tuple[FrameFunction, list[int]]:
    """The per-frame function of the STFT loop and the widths of its output columns."""
    n_fft = cfg["n_fft"]
    freq = fft_frequencies(sr, n_fft).astype(np.float32)
    bands = contrast_bands(sr, n_fft, cfg["fmin"], cfg["n_bands"], cfg["quantile"])
    floor_ratio = amplitude_ratio(cfg["noise_floor_db"])
    band_of_bin = np.searchsorted(cfg["band_edges_hz"], fft_frequencies(sr, n_fft), side="right")
    band_indicator = np.eye(3, dtype=np.float32)[band_of_bin]  # (n_bins, 3)
    mel_t = np.ascontiguousarray(mel_filterbank(sr, n_fft, cfg["n_mels"]).T)
    chroma_t = np.ascontiguousarray(chroma_filterbank(sr, n_fft, cfg["n_chroma"], cfg["tuning"]).T)

    def per_frame(b: Graph, magnitude: str, power: str, energy: str) -> list[str]:
        axis1 = vec(b, 1)
        total = b.ReduceSum(magnitude, axis1, keepdims=1)
        total = b.Where(b.Less(total, TINY32), 1.0, total)
        freq_c = b.const(freq)
        centroid = b.Div(b.ReduceSum(b.Mul(magnitude, freq_c), axis1, keepdims=1), total)
        deviation = b.Sub(freq_c, centroid)
        spread = b.ReduceSum(b.Mul(magnitude, b.Mul(deviation, deviation)), axis1, keepdims=1)
        bandwidth = b.Sqrt(b.Div(spread, total))
        cumulative = b.CumSum(magnitude, b.const(np.int64(1)))
        threshold = b.Mul(take(b, cumulative, -1, n_fft, axis=1), cfg["roll_percent"])
        below = b.ReduceSum(b.Cast(b.Less(cumulative, threshold), to=FLOAT), axis1, keepdims=1)
        rolloff = b.Mul(below, float(sr / n_fft))
        valleys: list[str] = []
        peaks: list[str] = []
        frame_peak = b.ReduceMax(magnitude, axis1, keepdims=1)
        floor = b.Mul(frame_peak, floor_ratio)
        for lo, hi, q in bands:
            band = take(b, magnitude, lo, hi, axis=1)
            for largest, out in ((0, valleys), (1, peaks)):
                top = b.TopK(band, vec(b, q), axis=1, largest=largest, outputs=2)[0]
                out.append(b.ReduceMean(b.Max(top, floor), axis1, keepdims=1))
        rms = b.Sqrt(b.Div(energy, float(cfg["frame_length"])))
        return [
            centroid,
            bandwidth,
            rolloff,
            *valleys,
            *peaks,
            b.MatMul(power, b.const(mel_t)),
            b.MatMul(power, b.const(chroma_t)),
            b.MatMul(power, b.const(band_indicator)),
            rms,
            frame_peak,
        ]

    n_bands = len(bands)
    return per_frame, [1, 1, 1, n_bands, n_bands, cfg["n_mels"], cfg["n_chroma"], 3, 1, 1]


def _zero_crossing_rate(g: Graph, y: str, threshold: str, frame_length: int, hop: int) -> str:
    """``librosa.feature.zero_crossing_rate(y, frame_length, hop, center=True, threshold)``
    ``(T, 1)``: sign changes between consecutive samples of ``y`` inside each centred frame,
    samples within ``threshold`` of 0 counting as positive."""
    negative = g.Less(y, g.Neg(threshold))
    n = dim(g, y, 0)
    changes = g.Cast(g.Xor(take(g, negative, 1, n), take(g, negative, 0, -1)), to=FLOAT)
    hops_per_frame = frame_length // hop
    n_frames = g.Add(g.Div(n, hop), 1)
    total = g.Mul(g.Add(n_frames, hops_per_frame - 1), hop)
    # crossing[i] (between samples i - 1 and i) placed like the centred, padded signal
    padded = g.Pad(
        changes, vec(g, frame_length // 2 + 1, g.Sub(g.Sub(total, n), frame_length // 2))
    )
    hops = g.Reshape(padded, vec(g, -1, hop))
    per_hop = g.ReduceSum(hops, vec(g, 1), keepdims=1)
    frames = None
    for r in range(hops_per_frame):
        part = take(g, per_hop, r, g.Add(n_frames, r))
        frames = part if frames is None else g.Add(frames, part)
    # a frame's first sample pairs with the sample before the frame: not its crossing
    first = take(g, take(g, hops, 0, 1, axis=1), 0, n_frames)
    return str(g.Div(g.Sub(frames, first), float(frame_length)))


def build_feature_graph(
    stft: StftMethod = "factored",
    precision: StftPrecision = "float64",
    chunk_frames: int = CHUNK_FRAMES,
    *,
    resampled_input: bool = False,
) -> onnx.ModelProto:
    """The feature graph (see the module docstring).

    ``stft`` picks the DFT implementation and ``precision`` its arithmetic
    (:data:`~mixai_ml.edge._dsp.STFT_PRECISIONS`). With ``resampled_input`` the graph takes
    a third input, ``audio_resampled`` (channels, m): the audio already at 22.05 kHz, which
    it analyses instead of resampling (to test the graph on the very signal
    ``extract_features`` analyses).
    """
    cfg = dict(FEATURE_CONFIG)
    sr, hop, n_fft = cfg["sample_rate"], cfg["hop_length"], cfg["n_fft"]
    if cfg["frame_length"] != n_fft or cfg["lag"] != 1:
        raise ValueError("the graph assumes frame_length == n_fft and lag == 1")
    g = Graph("mixai_features")
    audio = g.input("audio", FLOAT, ["channels", "samples"])
    sample_rate = g.input("sample_rate", INT64, [])
    mono = g.ReduceMean(audio, vec(g, 0), keepdims=0)
    if resampled_input:
        given = g.input("audio_resampled", FLOAT, ["resampled_channels", "resampled_samples"])
        y = g.ReduceMean(given, vec(g, 0), keepdims=0)
    else:
        y = resample_from(g, mono, sample_rate, sr, precision)

    per_frame, widths = _spectral_frames(sr, cfg)
    values, n_frames = frame_loop(
        g,
        y,
        n_fft=n_fft,
        hop=hop,
        chunk_frames=chunk_frames,
        method=stft,
        precision=precision,
        per_frame=per_frame,
    )
    (centroid, bandwidth, rolloff, valley, peak, mel, chroma, band_frames, rms, frame_peak) = (
        g.Split(values, vec(g, *widths), axis=1, outputs=len(widths))
    )
    # frames silence_db under the loudest: the shape families of an all-zero frame
    loudest = g.ReduceMax(frame_peak, keepdims=0)
    silent = g.Less(frame_peak, g.Mul(loudest, amplitude_ratio(cfg["silence_db"])))
    shapes = (centroid, bandwidth, rolloff, valley, peak, chroma)
    centroid, bandwidth, rolloff, valley, peak, chroma = (
        g.Where(silent, 0.0, series) for series in shapes
    )
    contrast = g.Sub(power_to_db(g, peak, cfg["top_db"]), power_to_db(g, valley, cfg["top_db"]))
    log_mel = power_to_db(g, mel, cfg["top_db"])
    mfcc = g.MatMul(
        log_mel, g.const(np.ascontiguousarray(dct_matrix(cfg["n_mfcc"], cfg["n_mels"]).T))
    )
    rise = g.Relu(g.Sub(take(g, log_mel, 1, n_frames), take(g, log_mel, 0, -1)))
    flux = g.ReduceMean(rise, vec(g, 1), keepdims=0)
    shift = cfg["lag"] + n_fft // (2 * hop)
    onset = take(g, g.Pad(flux, vec(g, shift, 0)), 0, n_frames)
    chroma_max = g.ReduceMax(chroma, vec(g, 1), keepdims=1)
    chroma = g.Div(chroma, g.Where(g.Less(chroma_max, TINY32), 1.0, chroma_max))
    band_power = g.ReduceSum(band_frames, vec(g, 0), keepdims=0)
    total_power = g.ReduceSum(band_power, keepdims=0)
    band_db = g.Where(
        g.Greater(total_power, 0.0),
        power_db(g, g.Div(band_power, g.Max(total_power, TINY32))),
        PEAK_FLOOR_DB,
    )
    threshold = g.Mul(g.ReduceMax(g.Abs(y), keepdims=0), amplitude_ratio(cfg["noise_floor_db"]))
    zcr = g.Where(silent, 0.0, _zero_crossing_rate(g, y, threshold, cfg["frame_length"], hop))

    tempo_bpm, lag = _rhythm.tempo(g, onset, sr, hop, cfg)
    beats, keep = _rhythm.beat_frames(g, onset, lag, cfg["tightness"])
    beat_strength = select_or(g, g.Gather(onset, beats), keep, 0.0)

    native = native_features(g, audio, sample_rate, SUPPORTED_SAMPLE_RATES)
    column = vec(g, -1, 1)
    features = g.Concat(
        stats(g, centroid),
        stats(g, bandwidth),
        stats(g, rolloff),
        stats(g, g.Reshape(onset, column)),
        stats(g, contrast),
        stats(g, zcr),
        stats(g, rms),
        stats(g, g.Reshape(beat_strength, column)),
        stats(g, mfcc),
        stats(g, chroma),
        native.stereo_correlation,
        native.stereo_width,
        g.Reshape(tempo_bpm, vec(g, 1)),
        native.loudness,
        g.Reshape(native.sample_peak_db, vec(g, 1)),
        g.Reshape(native.crest_factor_db, vec(g, 1)),
        band_db,
        axis=0,
    )
    supported = is_one_of(g, sample_rate, SUPPORTED_SAMPLE_RATES)
    features = g.Where(supported, features, np.float32(np.nan))
    g.output(features, "features", FLOAT, [len(FEATURE_NAMES)])
    return model_proto(
        g,
        {
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "feature_names": json.dumps(list(FEATURE_NAMES)),
            "inputs": json.dumps(
                {**FEATURE_GRAPH_INPUTS, "audio_resampled": "float32 (channels, m) at 22050 Hz"}
                if resampled_input
                else FEATURE_GRAPH_INPUTS
            ),
            "feature_sample_rate": str(sr),
            "supported_sample_rates": json.dumps(list(SUPPORTED_SAMPLE_RATES)),
            "stft": stft,
            "stft_precision": precision,
        },
    )
