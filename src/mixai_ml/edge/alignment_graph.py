"""``alignment.onnx``: ``mixai_inference.alignment.estimate_alignment`` as one ONNX graph.

Inputs (see :data:`ALIGNMENT_GRAPH_INPUTS`): both stems at their own ``sample_rate``
(16, 44.1 or 48 kHz; other rates make every output NaN: a browser decodes such files at
48 kHz). As ``estimate_alignment``, the graph measures durations and RMS levels there and
resamples each mono downmix to ``ALIGNMENT_CONFIG["sample_rate"]`` (16 kHz) with soxr's
own filter (:mod:`~mixai_ml.edge._resample`).
Outputs: ``alignment_features`` float32 ``(23,)`` in ``ALIGNMENT_FEATURE_NAMES`` order and
``offset_ms`` (float32 scalar, positive: delay the vocal).

Per step:

* onset envelopes: the STFT loop of :func:`~mixai_ml.edge._dsp.frame_loop` (512 / 64) with
  the 40-band mel filterbank as a constant matrix, log, spectral flux, normalisation;
* onset cross-correlation for lags of +-2 s: the instrumental's four quarters (their sum is
  the whole) correlated with the vocal by one grouped Conv over chunks of 1024 frames,
  whose weights are the instrumental's onsets (a runtime tensor);
* GCC-PHAT: 16 kHz -> 8 kHz with soxr's filter, half-overlapping 65 536-sample Hann frames, the
  ONNX ``DFT`` operator (131 072 points: too large for a constant basis), whitening in
  150-3500 Hz and one inverse DFT;
* peaks (parabolic interpolation, peak-to-sidelobe ratios, runner-up, half-height width),
  segment agreement, onset rates and activity: masked reductions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx

from mixai_inference._spectral import hann_window, mel_filterbank
from mixai_inference.alignment import ALIGNMENT_CONFIG, ALIGNMENT_FEATURE_NAMES
from mixai_ml.edge._dsp import (
    StftMethod,
    StftPrecision,
    count,
    dim,
    frame_loop,
    irfft,
    item,
    power_db,
    power_to_db,
    rfft,
    sum_squares,
    take,
    vec,
)
from mixai_ml.edge._graph import BOOL, DOUBLE, FLOAT, INT64, Graph
from mixai_ml.edge._resample import RESAMPLED_RATES, decimate, is_one_of, resample_from
from mixai_ml.edge.feature_graph import CHUNK_FRAMES, model_proto

__all__ = ["ALIGNMENT_GRAPH_INPUTS", "ALIGNMENT_SAMPLE_RATES", "build_alignment_graph"]

_TINY = 1e-12
_XCORR_CHUNK = 1024  # onset frames per group of the correlation Conv

#: Rates the stems may have: the alignment rate and the rates resampled like soxr.
ALIGNMENT_SAMPLE_RATES: tuple[int, ...] = tuple(
    sorted({ALIGNMENT_CONFIG["sample_rate"], *RESAMPLED_RATES})
)

ALIGNMENT_GRAPH_INPUTS: dict[str, str] = {
    "vocal": "float32 (channels, samples), 1 or 2 channels, at sample_rate",
    "instrumental": "float32 (channels, samples), 1 or 2 channels, at sample_rate",
    "sample_rate": "int64 scalar, Hz, of both stems, one of supported_sample_rates",
}


def _scalar(g: Graph, x: str) -> str:
    return str(g.Reshape(x, vec(g, 1)))


class _Stem:
    """Value names of one stem's analysis (see ``mixai_inference.alignment._analyze_stem``)."""

    def __init__(
        self, g: Graph, native: str, sr: str, stft: StftMethod, precision: StftPrecision
    ) -> None:
        cfg = ALIGNMENT_CONFIG
        rate, n_fft, hop = cfg["sample_rate"], cfg["n_fft"], cfg["hop_length"]
        mono = g.ReduceMean(native, vec(g, 0), keepdims=0)
        n = dim(g, mono, 0)
        n_f = g.Cast(n, to=FLOAT)
        mean_square = g.Div(sum_squares(g, mono), n_f)
        self.duration_s = g.Div(n_f, g.Cast(sr, to=FLOAT))
        self.rms_dbfs = power_db(g, mean_square)

        y = resample_from(g, mono, sr, rate, precision)
        mel_t = np.ascontiguousarray(mel_filterbank(rate, n_fft, cfg["n_mels"]).T)

        def per_frame(b: Graph, magnitude: str, power: str, energy: str) -> list[str]:
            del magnitude
            return [b.MatMul(power, b.const(mel_t)), energy]

        values, n_frames = frame_loop(
            g,
            y,
            n_fft=n_fft,
            hop=hop,
            chunk_frames=CHUNK_FRAMES,
            method=stft,
            precision=precision,
            per_frame=per_frame,
        )
        mel, energy = g.Split(values, vec(g, cfg["n_mels"], 1), axis=1, outputs=2)
        log_mel = power_to_db(g, mel, cfg["top_db"])
        rise = g.Relu(g.Sub(take(g, log_mel, 1, n_frames), take(g, log_mel, 0, -1)))
        self.flux = g.Pad(g.ReduceMean(rise, vec(g, 1), keepdims=0), vec(g, 1, 0))
        mean = g.ReduceMean(self.flux, keepdims=0)
        spread = g.Sqrt(g.ReduceMean(g.Pow(g.Sub(self.flux, mean), 2.0), keepdims=0))
        self.onsets = g.Where(
            g.Greater(spread, 0.0), g.Div(g.Sub(self.flux, mean), g.Max(spread, _TINY)), 0.0
        )
        frame_power = g.Reshape(g.Div(energy, float(n_fft)), vec(g, -1))
        self.frame_db = power_db(g, frame_power)
        self.waveform = decimate(g, y, rate, cfg["gcc_sample_rate"], precision)


def _next_power_of_two(g: Graph, n: str) -> str:
    """A power of two >= ``n`` (int64; twice that when float rounding says so)."""
    exponent = g.Ceil(g.Div(g.Log(g.Cast(n, to=FLOAT)), float(np.log(2.0))))
    return str(g.Cast(g.Pow(2.0, exponent), to=INT64))


def _lags(g: Graph, full: str, max_lag: int) -> str:
    """``concat(full[..., -max_lag:], full[..., :max_lag + 1])`` of circular correlations."""
    size = dim(g, full, 1)
    return str(
        g.Concat(
            take(g, full, g.Sub(size, max_lag), size, axis=1),
            take(g, full, 0, max_lag + 1, axis=1),
            axis=1,
        )
    )


def _onset_correlations(
    g: Graph, instrumental: str, vocal: str, max_lag: int, n_segments: int, dtype: int
) -> tuple[str, str, str]:
    """Onset cross-correlations ``c[k] = sum_n ref[n + k] vocal[n]``, ``k = -max_lag..max_lag``.

    Returns ``(whole, segments (n_segments, 2 max_lag + 1), has_positive (n_segments,))``:
    the instrumental's parts (bounds ``linspace(0, n, n_segments + 1)``, zero elsewhere)
    are correlated together in one batch of DFTs; their sum is the whole correlation.
    """
    n_inst, n_voc = dim(g, instrumental, 0), dim(g, vocal, 0)
    index = g.Range(0, n_inst, 1)
    bounds = g.Div(g.Mul(g.Range(0, n_segments + 1, 1), n_inst), n_segments)
    lower = g.Unsqueeze(take(g, bounds, 0, n_segments), vec(g, 1))
    upper = g.Unsqueeze(take(g, bounds, 1, n_segments + 1), vec(g, 1))
    inside = g.And(g.GreaterOrEqual(index, lower), g.Less(index, upper))  # (S, n)
    has_positive = g.Cast(
        g.ReduceMax(
            g.Cast(g.And(inside, g.Greater(instrumental, 0.0)), to=INT64), vec(g, 1), keepdims=0
        ),
        to=BOOL,
    )
    parts = g.Cast(g.Where(inside, instrumental, 0.0), to=dtype)
    size = _next_power_of_two(g, g.Add(g.Max(n_inst, n_voc), max_lag + 1))
    part_re, part_im = rfft(g, parts, size)
    voc_re, voc_im = rfft(g, g.Unsqueeze(g.Cast(vocal, to=dtype), vec(g, 0)), size)
    cross_re = g.Add(g.Mul(part_re, voc_re), g.Mul(part_im, voc_im))  # part * conj(vocal)
    cross_im = g.Sub(g.Mul(part_im, voc_re), g.Mul(part_re, voc_im))
    segments = g.Cast(_lags(g, irfft(g, cross_re, cross_im, size), max_lag), to=FLOAT)
    whole = g.ReduceSum(segments, vec(g, 0), keepdims=0)
    return whole, segments, has_positive


def _parabola(g: Graph, c: str, index: str) -> tuple[str, str]:
    """Sub-sample shift (-0.5..0.5) and height of the parabola through ``c[index]`` and its
    neighbours (0 and ``c[index]`` at the ends or where the curvature is not negative)."""
    n = dim(g, c, 0)
    centre = item(g, c, index)
    interior = g.And(g.Greater(index, 0), g.Less(index, g.Sub(n, 1)))
    left = item(g, c, g.Max(g.Sub(index, 1), 0))
    right = item(g, c, g.Min(g.Add(index, 1), g.Sub(n, 1)))
    curvature = g.Add(g.Sub(left, g.Mul(centre, 2.0)), right)
    bend = g.And(interior, g.Less(curvature, 0.0))
    shift = g.Div(g.Mul(g.Sub(left, right), 0.5), g.Where(bend, curvature, -1.0))
    height = g.Sub(centre, g.Mul(g.Mul(g.Sub(left, right), 0.25), shift))
    return g.Where(bend, shift, 0.0), g.Where(bend, height, centre)


@dataclass(frozen=True)
class _Peak:
    """A correlation peak (``mixai_inference.alignment._Peak``), as value names."""

    index: str  # int64 position in the correlation
    lag: str  # interpolated, in lags
    height: str
    psr: str  # peak-to-sidelobe ratio
    distance: str  # int64 |position - index| of every position


def _find_peak(g: Graph, c: str, max_lag: int, main_lobe: int) -> _Peak:
    """``mixai_inference.alignment._find_peak`` of a 1-D float32 correlation."""
    index = g.ArgMax(c, axis=0, keepdims=0)
    shift, height = _parabola(g, c, index)
    distance = g.Abs(g.Sub(g.Range(0, dim(g, c, 0), 1), index))
    side = g.Greater(distance, main_lobe)
    n_side = g.Cast(count(g, side), to=FLOAT)
    mean = g.Div(g.ReduceSum(g.Where(side, c, 0.0), keepdims=0), n_side)
    deviation = g.Where(side, g.Sub(c, mean), 0.0)
    std = g.Sqrt(g.Div(g.ReduceSum(g.Mul(deviation, deviation), keepdims=0), n_side))
    return _Peak(
        index=index,
        lag=g.Add(g.Cast(g.Sub(index, max_lag), to=FLOAT), shift),
        height=height,
        psr=g.Div(g.Sub(height, mean), g.Max(std, _TINY)),
        distance=distance,
    )


def _zero_lag_unless(g: Graph, shared: str, found: _Peak, c: str, max_lag: int) -> _Peak:
    """``found`` where ``shared``, else lag 0 with the zero-lag value and a ratio of 0."""
    index = g.Where(shared, found.index, max_lag)
    return _Peak(
        index=index,
        lag=g.Where(shared, found.lag, 0.0),
        height=g.Where(shared, found.height, item(g, c, max_lag)),
        psr=g.Where(shared, found.psr, 0.0),
        distance=g.Abs(g.Sub(g.Range(0, dim(g, c, 0), 1), index)),
    )


def _local_maxima(g: Graph, c: str) -> str:
    """Interior points above their left and not below their right neighbour (bool)."""
    n = dim(g, c, 0)
    inner = take(g, c, 1, -1)
    peak = g.And(g.Greater(inner, take(g, c, 0, -2)), g.GreaterOrEqual(inner, take(g, c, 2, n)))
    return str(g.Pad(peak, vec(g, 1, 1), g.const(False)))


def _runner_up(g: Graph, c: str, peak: _Peak, main_lobe: int) -> tuple[str, str]:
    """Height ratio and distance (lags) of the largest local maximum outside the main lobe."""
    candidates = g.And(_local_maxima(g, c), g.Greater(peak.distance, main_lobe))
    second = g.ArgMax(g.Where(candidates, c, np.float32(-np.inf)), axis=0, keepdims=0)
    found = g.And(g.Greater(count(g, candidates), 0), g.Greater(peak.height, 0.0))
    ratio = g.Clip(g.Div(item(g, c, second), g.Where(found, peak.height, 1.0)), -1.0, 1.0)
    distance = g.Cast(g.Abs(g.Sub(second, peak.index)), to=FLOAT)
    return g.Where(found, ratio, 0.0), g.Where(found, distance, 0.0)


def _half_height_width(g: Graph, c: str, peak: _Peak) -> str:
    """Width (lags) of the region around the peak above half its height."""
    n = dim(g, c, 0)
    below = g.Not(g.Greater(c, g.Mul(peak.height, 0.5)))
    position = g.Range(0, n, 1)
    left = g.ReduceMax(
        g.Where(g.And(below, g.LessOrEqual(position, peak.index)), position, 0), keepdims=0
    )
    right = g.ReduceMin(
        g.Where(g.And(below, g.GreaterOrEqual(position, peak.index)), position, n), keepdims=0
    )
    return str(g.Cast(g.Sub(right, left), to=FLOAT))


def _gcc_phat(g: Graph, reference: str, delayed: str, max_lag: int, dtype: int) -> str:
    """GCC-PHAT lags ``-max_lag..max_lag`` of two 8 kHz waveforms (``alignment._gcc_phat``)."""
    cfg = ALIGNMENT_CONFIG
    frame, half = cfg["gcc_frame"], cfg["gcc_frame"] // 2
    n = g.Max(dim(g, reference, 0), dim(g, delayed, 0))
    n_frames = g.Add(g.Div(g.Max(g.Sub(n, frame), 0), half), 1)
    length = g.Mul(g.Add(n_frames, 1), half)
    np_dtype = np.float64 if dtype == DOUBLE else np.float32
    window = g.const(hann_window(frame).astype(np_dtype))
    spectra = []
    for wave in (reference, delayed):
        padded = take(
            g, g.Pad(wave, vec(g, 0, g.Max(g.Sub(length, dim(g, wave, 0)), 0))), 0, length
        )
        halves = g.Reshape(g.Cast(padded, to=dtype), vec(g, -1, half))
        frames = g.Concat(
            take(g, halves, 0, n_frames), take(g, halves, 1, g.Add(n_frames, 1)), axis=1
        )
        spectra.append(rfft(g, g.Mul(frames, window), 2 * frame))
    (a_re, a_im), (b_re, b_im) = spectra
    axis0 = vec(g, 0)
    cross_re = g.ReduceSum(g.Add(g.Mul(a_re, b_re), g.Mul(a_im, b_im)), axis0, keepdims=1)
    cross_im = g.ReduceSum(g.Sub(g.Mul(a_im, b_re), g.Mul(a_re, b_im)), axis0, keepdims=1)
    magnitude = g.Sqrt(g.Add(g.Mul(cross_re, cross_re), g.Mul(cross_im, cross_im)))
    freqs = np.fft.rfftfreq(2 * frame, 1.0 / cfg["gcc_sample_rate"])
    low, high = cfg["gcc_band_hz"]
    band = g.And(
        g.const((freqs >= low) & (freqs <= high)), g.Greater(magnitude, g.const(0.0, np_dtype))
    )
    safe = g.Where(band, magnitude, g.const(1.0, np_dtype))
    zero = g.const(0.0, np_dtype)
    white_re = g.Where(band, g.Div(cross_re, safe), zero)
    white_im = g.Where(band, g.Div(cross_im, safe), zero)
    full = irfft(g, white_re, white_im, 2 * frame)
    scale = g.Div(float(2 * frame), g.Max(g.Cast(g.Mul(count(g, band), 2), to=FLOAT), 1.0))
    return str(g.Mul(g.Reshape(g.Cast(_lags(g, full, max_lag), to=FLOAT), vec(g, -1)), scale))


def _onset_rate(g: Graph, flux: str, frame_rate: float) -> str:
    cfg = ALIGNMENT_CONFIG
    mean = g.ReduceMean(flux, keepdims=0)
    std = g.Sqrt(g.ReduceMean(g.Pow(g.Sub(flux, mean), 2.0), keepdims=0))
    above = g.Greater(flux, g.Add(mean, g.Mul(std, cfg["onset_threshold_std"])))
    peaks = g.And(_local_maxima(g, flux), above)
    seconds = g.Div(g.Cast(dim(g, flux, 0), to=FLOAT), frame_rate)
    return str(g.Div(g.Cast(count(g, peaks), to=FLOAT), seconds))


def _activity_ratio(g: Graph, frame_db: str) -> str:
    cfg = ALIGNMENT_CONFIG
    floor = g.Max(
        g.Sub(g.ReduceMax(frame_db, keepdims=0), cfg["activity_range_db"]),
        cfg["activity_floor_dbfs"],
    )
    return str(g.ReduceMean(g.Cast(g.Greater(frame_db, floor), to=FLOAT), keepdims=0))


def build_alignment_graph(
    stft: StftMethod = "factored", precision: StftPrecision = "float32"
) -> onnx.ModelProto:
    """The alignment graph (see the module docstring).

    ``precision`` sets the arithmetic of the STFT and of the correlation DFTs. float32 by
    default: the alignment features are correlations of onset envelopes and whitened
    spectra, which float32 reproduces within the documented tolerances at half the cost
    (unlike the spectral contrast of the track features, which reads magnitudes 140 dB
    below a frame's peak).
    """
    cfg = ALIGNMENT_CONFIG
    dtype = DOUBLE if precision == "float64" else FLOAT
    g = Graph("mixai_alignment")
    vocal = g.input("vocal", FLOAT, ["vocal_channels", "vocal_samples"])
    instrumental = g.input("instrumental", FLOAT, ["instrumental_channels", "instrumental_samples"])
    sr = g.input("sample_rate", INT64, [])
    voc = _Stem(g, vocal, sr, stft, precision)
    inst = _Stem(g, instrumental, sr, stft, precision)

    frame_ms = 1000.0 * cfg["hop_length"] / cfg["sample_rate"]
    max_lag = round(cfg["max_offset_ms"] / frame_ms)
    main_lobe = round(cfg["main_lobe_ms"] / frame_ms)
    whole, segments, has_positive = _onset_correlations(
        g, inst.onsets, voc.onsets, max_lag, cfg["n_segments"], dtype
    )
    norm = g.Sqrt(g.Mul(sum_squares(g, inst.onsets), sum_squares(g, voc.onsets)))
    correlation = g.Div(whole, g.Max(norm, _TINY))
    found = _find_peak(g, correlation, max_lag, main_lobe)
    # no shared onsets at any lag (e.g. a silent stem): no shift, the zero-lag value
    onset = _zero_lag_unless(g, g.Greater(found.height, 0.0), found, correlation, max_lag)
    onset_ms = g.Mul(onset.lag, frame_ms)
    second_ratio, second_distance = _runner_up(g, correlation, onset, main_lobe)
    width = _half_height_width(g, correlation, onset)

    gcc_rate = cfg["gcc_sample_rate"]
    gcc_lag = round(cfg["max_offset_ms"] * gcc_rate / 1000.0)
    gcc_lobe = round(cfg["gcc_main_lobe_ms"] * gcc_rate / 1000.0)
    gcc_correlation = _gcc_phat(g, inst.waveform, voc.waveform, gcc_lag, dtype)
    gcc = _find_peak(g, gcc_correlation, gcc_lag, gcc_lobe)
    gcc_ms = g.Mul(gcc.lag, 1000.0 / gcc_rate)
    use_gcc = g.GreaterOrEqual(gcc.psr, cfg["gcc_min_psr"])
    offset_ms = g.Where(use_gcc, gcc_ms, onset_ms)

    segment_ms = []
    valid = []
    for k in range(cfg["n_segments"]):
        part = item(g, segments, k)
        lag = _find_peak(g, part, max_lag, 0).lag
        segment_ms.append(g.Reshape(g.Mul(lag, frame_ms), vec(g, 1)))
        ok = g.And(item(g, has_positive, k), g.Greater(g.ReduceMax(part, keepdims=0), 0.0))
        valid.append(g.Reshape(ok, vec(g, 1)))
    segment_ms_all, valid_all = g.Concat(*segment_ms, axis=0), g.Concat(*valid, axis=0)
    deviation = g.Abs(g.Sub(segment_ms_all, offset_ms))
    n_valid = count(g, valid_all)
    agree = count(g, g.And(valid_all, g.LessOrEqual(deviation, cfg["tolerance_ms"])))
    agreement = g.Where(
        g.Greater(n_valid, 0), g.Div(g.Cast(agree, to=FLOAT), float(cfg["n_segments"])), 0.0
    )
    ordered = g.TopK(
        g.Where(valid_all, deviation, np.float32(np.inf)),
        vec(g, cfg["n_segments"]),
        largest=0,
        outputs=2,
    )[0]
    low, high = g.Div(g.Max(g.Sub(n_valid, 1), 0), 2), g.Div(n_valid, 2)
    median = g.Mul(
        g.Add(item(g, ordered, low), item(g, ordered, g.Min(high, cfg["n_segments"] - 1))), 0.5
    )
    spread = g.Where(g.Greater(n_valid, 0), median, 2.0 * cfg["max_offset_ms"])

    frame_rate = cfg["sample_rate"] / cfg["hop_length"]
    offset_s = g.Div(offset_ms, 1000.0)
    start = g.Max(offset_s, 0.0)
    end = g.Min(inst.duration_s, g.Add(voc.duration_s, offset_s))
    overlap = g.Div(g.Max(g.Sub(end, start), 0.0), g.Min(inst.duration_s, voc.duration_s))

    values = [
        offset_ms,
        g.Sub(cfg["max_offset_ms"], g.Abs(offset_ms)),
        onset.height,
        item(g, correlation, max_lag),
        onset.psr,
        second_ratio,
        g.Mul(second_distance, frame_ms),
        g.Mul(width, frame_ms),
        agreement,
        spread,
        _onset_rate(g, voc.flux, frame_rate),
        _onset_rate(g, inst.flux, frame_rate),
        _activity_ratio(g, voc.frame_db),
        _activity_ratio(g, inst.frame_db),
        voc.duration_s,
        inst.duration_s,
        voc.rms_dbfs,
        inst.rms_dbfs,
        g.Min(overlap, 1.0),
        gcc.height,
        gcc.psr,
        g.Abs(g.Sub(gcc_ms, onset_ms)),
        g.Cast(use_gcc, to=FLOAT),
    ]
    if len(values) != len(ALIGNMENT_FEATURE_NAMES):
        raise AssertionError("alignment features out of step with ALIGNMENT_FEATURE_NAMES")
    features = g.Concat(*(_scalar(g, v) for v in values), axis=0)
    supported = is_one_of(g, sr, ALIGNMENT_SAMPLE_RATES)
    features = g.Where(supported, features, np.float32(np.nan))
    offset_ms = g.Where(supported, offset_ms, np.float32(np.nan))
    g.output(features, "alignment_features", FLOAT, [len(ALIGNMENT_FEATURE_NAMES)])
    g.output(offset_ms, "offset_ms", FLOAT, [])
    return model_proto(
        g,
        {
            "alignment_feature_names": json.dumps(list(ALIGNMENT_FEATURE_NAMES)),
            "inputs": json.dumps(ALIGNMENT_GRAPH_INPUTS),
            "alignment_sample_rate": str(cfg["sample_rate"]),
            "supported_sample_rates": json.dumps(list(ALIGNMENT_SAMPLE_RATES)),
            "stft": stft,
            "stft_precision": precision,
        },
    )
