"""Graph pieces shared by the feature and alignment graphs: shapes, statistics, decibels,
framing and the short-time Fourier transform (three interchangeable implementations).

Every function takes the :class:`~mixai_ml.edge._graph.Graph` to add nodes to and returns
value names. Scalars are rank-0 tensors; "int" below means an int64 value name or a python
int.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from mixai_inference._spectral import hann_window
from mixai_ml.edge._graph import BOOL, DOUBLE, FLOAT, INT64, Graph, Value

__all__ = [
    "STFT_METHODS",
    "STFT_PRECISIONS",
    "FrameFunction",
    "StftMethod",
    "StftPrecision",
    "amplitude_db",
    "count",
    "dim",
    "frame_loop",
    "irfft",
    "item",
    "masked_mean",
    "power_db",
    "power_to_db",
    "rfft",
    "select_or",
    "sliding_sum",
    "stats",
    "sum_squares",
    "take",
    "vec",
]

StftMethod = Literal["factored", "dft", "conv"]
StftPrecision = Literal["float64", "float32"]
#: ``factored``: a two-stage (N1 x N2) DFT as matrix products with constant bases;
#: ``dft``: the ONNX DFT operator; ``conv``: one Conv with the windowed Fourier basis.
STFT_METHODS: tuple[StftMethod, ...] = ("factored", "dft", "conv")
#: ``float64``: transform in double precision and round the magnitude to float32, as
#: ``mixai_inference`` (and librosa) do; ``float32``: faster, with a noise floor about
#: 150 dB below each frame's peak (visible in the contrast valleys of pure tones).
STFT_PRECISIONS: tuple[StftPrecision, ...] = ("float64", "float32")

TINY32 = float(np.finfo(np.float32).tiny)
DB_PER_LOG = 10.0 / math.log(10.0)
PEAK_FLOOR_DB = -120.0


# -- shapes and indexing ------------------------------------------------------------------


def vec(g: Graph, *items: Value) -> str:
    """A 1-D int64 tensor from int64 scalars and python ints."""
    if all(isinstance(item, int) for item in items):
        return g.const(np.array(items, dtype=np.int64))
    axis0 = g.const(np.array([0], dtype=np.int64))
    parts = [g.Unsqueeze(item if isinstance(item, str) else g.const(item), axis0) for item in items]
    return str(g.Concat(*parts, axis=0))


def dim(g: Graph, x: str, axis: int) -> str:
    """Length of ``x`` along ``axis`` (int64 scalar)."""
    return str(g.Squeeze(g.Shape(x, start=axis, end=axis + 1), vec(g, 0)))


def take(g: Graph, x: str, start: Value, stop: Value, axis: int = 0) -> str:
    """``x[start:stop]`` along ``axis`` (python-style clamping)."""
    return str(g.Slice(x, vec(g, start), vec(g, stop), vec(g, axis)))


def item(g: Graph, x: str, index: Value, axis: int = 0) -> str:
    """``x[index]`` along ``axis`` (the axis disappears)."""
    return str(g.Gather(x, index, axis=axis))


def count(g: Graph, mask: str) -> str:
    """Number of true values of a boolean tensor (int64 scalar)."""
    return str(g.ReduceSum(g.Cast(mask, to=INT64), keepdims=0))


def ceil_div(g: Graph, a: Value, b: Value) -> str:
    return str(g.Div(g.Add(a, g.Sub(b, 1)), b))


# -- statistics and decibels ---------------------------------------------------------------


def stats(g: Graph, x: str) -> str:
    """mean, std (ddof 0), min, max over axis 0 of ``(n, k)`` -> ``(4 k,)``, k-major."""
    axis0 = vec(g, 0)
    mean = g.ReduceMean(x, axis0, keepdims=1)
    std = g.Sqrt(g.ReduceMean(g.Pow(g.Sub(x, mean), 2.0), axis0, keepdims=1))
    rows = g.Concat(
        mean, std, g.ReduceMin(x, axis0, keepdims=1), g.ReduceMax(x, axis0, keepdims=1), axis=0
    )
    return str(g.Reshape(g.Transpose(rows, perm=[1, 0]), vec(g, -1)))


def select_or(g: Graph, x: str, mask: str, fallback: float) -> str:
    """``x[mask]`` (along axis 0 of a 1-D ``x``), or ``[fallback]`` when nothing is selected."""
    chosen = g.Compress(x, mask, axis=0)
    empty = g.Equal(count(g, mask), 0)
    pad = g.Compress(
        g.const(np.array([fallback], dtype=np.float32)), g.Reshape(empty, vec(g, 1)), axis=0
    )
    return str(g.Concat(chosen, pad, axis=0))


def masked_mean(g: Graph, x: str, mask: str) -> str:
    """Mean of ``x`` where ``mask`` (NaN-free: 0 / max(count, 1))."""
    total = g.ReduceSum(g.Where(mask, x, 0.0), keepdims=0)
    n = g.Max(g.Cast(count(g, mask), to=FLOAT), 1.0)
    return str(g.Div(total, n))


def sum_squares(g: Graph, x: str, block: int = 4096) -> str:
    """``sum(x^2)`` of 1-D ``x`` in two levels (per block, then over blocks): float32 error
    ~1e-7 relative even for tens of millions of samples."""
    n = dim(g, x, 0)
    padded = g.Pad(x, vec(g, 0, g.Sub(g.Mul(ceil_div(g, n, block), block), n)))
    per_block = g.ReduceSumSquare(g.Reshape(padded, vec(g, -1, block)), vec(g, 1), keepdims=0)
    return str(g.ReduceSum(per_block, keepdims=0))


def log10x10(g: Graph, x: str) -> str:
    """``10 log10(x)`` (-inf for 0)."""
    return str(g.Mul(g.Log(x), DB_PER_LOG))


def power_to_db(g: Graph, power: str, top_db: float) -> str:
    """``librosa.power_to_db(power, ref=1, amin=1e-10, top_db)``: floor relative to the max."""
    db = log10x10(g, g.Max(power, 1e-10))
    return str(g.Max(db, g.Sub(g.ReduceMax(db, keepdims=0), top_db)))


def power_db(g: Graph, value: str) -> str:
    """``10 log10(value)`` floored at -120 dB (also for 0)."""
    positive = g.Greater(value, 0.0)
    db = log10x10(g, g.Where(positive, value, 1.0))
    return str(g.Where(positive, g.Max(db, PEAK_FLOOR_DB), PEAK_FLOOR_DB))


def amplitude_db(g: Graph, value: str) -> str:
    """``20 log10(value)`` floored at -120 dB (also for 0)."""
    return power_db(g, g.Mul(value, value))


def sliding_sum(g: Graph, x: str, width: int) -> str:
    """Sums of every ``width`` consecutive values of 1-D ``x`` (``len(x) - width + 1``)."""
    kernel = g.const(np.ones((1, 1, width), dtype=np.float32))
    summed = g.Conv(g.Reshape(x, vec(g, 1, 1, -1)), kernel)
    return str(g.Reshape(summed, vec(g, -1)))


# -- the short-time Fourier transform ------------------------------------------------------


def _fourier(n: int, k: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cos`` and ``-sin`` of ``2 pi k m / n`` (exact argument reduction, float64)."""
    angle = 2.0 * np.pi * (np.multiply.outer(k, m) % n) / n
    return np.cos(angle), -np.sin(angle)


def _factored_dft(g: Graph, frames: str, n_fft: int, dtype: type) -> tuple[str, str]:
    """One-sided DFT of real ``(F, n_fft)`` frames in two stages (n_fft = N1 * N2).

    With ``n = N2 n1 + n2`` and ``k = k1 + N1 k2``: an N1-point DFT over ``n1`` for every
    ``n2``, twiddle factors ``exp(-2 pi i n2 k1 / n_fft)``, then an N2-point DFT over ``n2``
    for ``k2 <= N2 / 2`` only (the one-sided bins). About ``n_fft (N1 + 2 N2)`` multiply-adds
    per frame instead of ``n_fft^2``, and float32 error ~2e-7 of the frame's peak bin.
    """
    n1_size = 1 << math.ceil(math.log2(n_fft) / 2)
    n2_size = n_fft // n1_size
    cos1, sin1 = _fourier(n1_size, np.arange(n1_size), np.arange(n1_size))
    stage1: np.ndarray = np.concatenate([cos1, sin1], axis=1).astype(dtype)  # (n1, 2 k1)
    tw_cos, tw_sin = _fourier(n_fft, np.arange(n2_size), np.arange(n1_size))  # (n2, k1)
    k2 = np.arange(n2_size // 2 + 1)
    cos2, sin2 = _fourier(n2_size, np.arange(n2_size), k2)

    grid = g.Transpose(g.Reshape(frames, vec(g, 0, n1_size, n2_size)), perm=[0, 2, 1])
    first_re, first_im = g.Split(
        g.MatMul(grid, stage1), vec(g, n1_size, n1_size), axis=2, outputs=2
    )
    c, s = g.const(tw_cos.astype(dtype)), g.const(tw_sin.astype(dtype))
    twiddled_re = g.Transpose(g.Sub(g.Mul(first_re, c), g.Mul(first_im, s)), perm=[0, 2, 1])
    twiddled_im = g.Transpose(g.Add(g.Mul(first_re, s), g.Mul(first_im, c)), perm=[0, 2, 1])
    c2, s2 = g.const(cos2.astype(dtype)), g.const(sin2.astype(dtype))
    re = g.Sub(g.MatMul(twiddled_re, c2), g.MatMul(twiddled_im, s2))  # (F, k1, k2)
    im = g.Add(g.MatMul(twiddled_re, s2), g.MatMul(twiddled_im, c2))
    n_bins = n_fft // 2 + 1
    re_flat, im_flat = (
        g.Reshape(g.Transpose(part, perm=[0, 2, 1]), vec(g, 0, -1)) for part in (re, im)
    )
    return take(g, re_flat, 0, n_bins, axis=1), take(g, im_flat, 0, n_bins, axis=1)


def _dft_operator(g: Graph, frames: str) -> tuple[str, str]:
    """One-sided DFT of ``(F, n_fft)`` frames with the ONNX ``DFT`` operator."""
    spectrum = g.DFT(g.Unsqueeze(frames, vec(g, -1)), onesided=1, axis=1)
    return item(g, spectrum, 0, axis=2), item(g, spectrum, 1, axis=2)


def _conv_basis(g: Graph, segment: str, n_fft: int, hop: int) -> tuple[str, str]:
    """Windowed one-sided DFT of every frame of ``segment`` as ONE strided Conv."""
    n_bins = n_fft // 2 + 1
    cos, sin = _fourier(n_fft, np.arange(n_bins), np.arange(n_fft))
    window = hann_window(n_fft)
    basis = np.concatenate([cos * window, sin * window]).astype(np.float32)[:, np.newaxis, :]
    out = g.Conv(g.Reshape(segment, vec(g, 1, 1, -1)), g.const(basis), strides=[hop])
    spectrum = g.Transpose(g.Squeeze(out, vec(g, 0)), perm=[1, 0])  # (F, 2 n_bins)
    re, im = g.Split(spectrum, vec(g, n_bins, n_bins), axis=1, outputs=2)
    return re, im


def rfft(g: Graph, x: str, n: Value) -> tuple[str, str]:
    """``numpy.fft.rfft(x, n)`` along the last axis of 2-D ``x`` (DFT operator): ``(re, im)``."""
    spectrum = g.DFT(g.Unsqueeze(x, vec(g, -1)), n, onesided=1, axis=1)
    return item(g, spectrum, 0, axis=2), item(g, spectrum, 1, axis=2)


def irfft(g: Graph, re: str, im: str, n: Value) -> str:
    """``numpy.fft.irfft(re + i im, n)`` along the last axis of 2-D one-sided spectra, ``n``
    even: the Hermitian spectrum is completed, then one inverse DFT (scaled by 1/n)."""
    mirror = (vec(g, -2), vec(g, 0), vec(g, 1), vec(g, -1))  # bins n/2 - 1 .. 1
    tail_re = g.Slice(re, *mirror)
    tail_im = g.Neg(g.Slice(im, *mirror))
    full = g.Concat(
        g.Unsqueeze(g.Concat(re, tail_re, axis=1), vec(g, -1)),
        g.Unsqueeze(g.Concat(im, tail_im, axis=1), vec(g, -1)),
        axis=2,
    )
    signal = g.DFT(full, n, inverse=1, onesided=0, axis=1)
    return item(g, signal, 0, axis=2)


#: per-frame outputs from ``(body graph, magnitude, power, frame_energy)``
FrameFunction = Callable[[Graph, str, str, str], Sequence[str]]


def frame_loop(
    g: Graph,
    y: str,
    *,
    n_fft: int,
    hop: int,
    chunk_frames: int,
    method: StftMethod,
    precision: StftPrecision,
    per_frame: FrameFunction,
) -> tuple[str, str]:
    """Per-frame values of the centred, zero-padded STFT of 1-D ``y``, in chunks of frames.

    Frame ``t`` covers ``y[t hop - n_fft/2 : t hop + n_fft/2]`` (Hann window, periodic);
    there are ``T = 1 + len(y) // hop`` frames, computed ``chunk_frames`` at a time by an
    ONNX Loop (bounded memory for long audio, like ``mixai_inference._spectral``).
    ``per_frame`` receives the chunk's magnitude and power ``(chunk, n_fft/2 + 1)`` and the
    frames' raw energy ``sum(frame^2)`` ``(chunk, 1)`` and returns ``(chunk, k_i)`` tensors.

    The transform runs in ``precision``; magnitude and power are float32 either way.
    Returns ``(values (T, sum k_i), T)``.
    """
    if n_fft % hop:
        raise ValueError("n_fft must be a multiple of hop_length")
    if method == "conv" and precision != "float32":
        raise ValueError("the conv STFT is float32 only (onnxruntime has no float64 Conv)")
    dtype = np.float64 if precision == "float64" else np.float32
    hops_per_frame = n_fft // hop
    n = dim(g, y, 0)
    n_frames = g.Add(g.Div(n, hop), 1)
    n_chunks = ceil_div(g, n_frames, chunk_frames)
    hops_per_chunk = chunk_frames + hops_per_frame - 1
    total = g.Mul(g.Add(g.Mul(n_chunks, chunk_frames), hops_per_frame - 1), hop)
    padded = g.Pad(y, vec(g, n_fft // 2, g.Sub(g.Sub(total, n), n_fft // 2)))

    body = g.body("frames")
    i = body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    start = body.Mul(i, chunk_frames * hop)
    segment = take(body, padded, start, body.Add(start, hops_per_chunk * hop))
    blocks = body.Reshape(segment, vec(body, hops_per_chunk, hop))
    hop_energy = body.ReduceSumSquare(blocks, vec(body, 1), keepdims=1)
    energy = hop_energy if hops_per_frame == 1 else None
    for r in range(hops_per_frame):
        part = take(body, hop_energy, r, r + chunk_frames)
        energy = part if energy is None else body.Add(energy, part)
    assert energy is not None
    if method == "conv":
        re, im = _conv_basis(body, segment, n_fft, hop)
    else:
        frames = body.Concat(
            *(take(body, blocks, r, r + chunk_frames) for r in range(hops_per_frame)), axis=1
        )
        if dtype is np.float64:
            frames = body.Cast(frames, to=DOUBLE)
        windowed = body.Mul(frames, body.const(hann_window(n_fft).astype(dtype)))
        if method == "factored":
            re, im = _factored_dft(body, windowed, n_fft, dtype)
        else:
            re, im = _dft_operator(body, windowed)
    magnitude = body.Sqrt(body.Add(body.Mul(re, re), body.Mul(im, im)))
    if dtype is np.float64:
        magnitude = body.Cast(magnitude, to=FLOAT)
    power = body.Mul(magnitude, magnitude)
    values = body.Concat(*per_frame(body, magnitude, power, energy), axis=1)
    body.output(body.Identity(True), body.fresh("cond_out"), BOOL, [])
    body.output(values, body.fresh("values"), FLOAT, [chunk_frames, None])

    stacked = g.Loop(n_chunks, True, body=body.proto())
    flat = g.Reshape(stacked, vec(g, -1, dim(g, stacked, 2)))
    return take(g, flat, 0, n_frames), n_frames
