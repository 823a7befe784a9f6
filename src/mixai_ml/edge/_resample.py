"""Resampling in the graph with soxr's own filters.

For 44.1 and 48 kHz input (and integer decimation), soxr "HQ" is a linear, periodically
shift-invariant (polyphase) filter: shifting the input by ``M`` samples shifts the output
by ``L`` (``rout / rin = L / M`` in lowest terms). Its taps are read here by resampling
unit impulses with ``mixai_inference.audio.resample`` itself, one per input offset of a
period, so the graph reproduces it to float32 rounding (~2.4e-7 of full scale). The two
edges are soxr's own and copied as such: the first outputs (soxr primes a rational-ratio
filter its own way; they are read the same way, as a small ``head`` matrix) and the
length (soxr returns ``floor(n rout / rin + 0.5)`` samples, ``resample`` pads zeros to
``ceil(n rout / rin)``). Higher rates (88.2, 96 kHz, ...) are resampled by soxr in stages
that are not one periodic filter (1e-4 mismatch): a browser decodes such files at 48 kHz.

In the graph, ``G`` periods form a super-block of ``L' = G L`` outputs read from ``R``
consecutive blocks of ``M' = G M`` inputs: one MatMul with a constant ``(R M', L')``
matrix per chunk of super-blocks (an ONNX Loop, so memory stays bounded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mixai_inference.audio import resample
from mixai_ml.edge._dsp import StftPrecision, ceil_div, dim, take, vec
from mixai_ml.edge._graph import BOOL, DOUBLE, FLOAT, INT64, Graph

__all__ = ["RESAMPLED_RATES", "Polyphase", "decimate", "is_one_of", "polyphase", "resample_from"]

#: Input rates the graphs resample exactly, by target rate (plus the target itself).
RESAMPLED_RATES: tuple[int, ...] = (44100, 48000)

# Taps each side needed for 2.4e-7 agreement with soxr (found by trimming until it holds).
_HALF_WIDTH = {
    (44100, 22050): 200,
    (48000, 22050): 250,
    (44100, 16000): 300,
    (48000, 16000): 300,
    (16000, 8000): 200,
}
_ONNX = {np.float64: DOUBLE, np.float32: FLOAT}
_OUTPUTS_PER_ITERATION = 1 << 16
HEAD_OUTPUTS = 8
_MAX_SLICES = 8


@dataclass(frozen=True)
class Polyphase:
    """soxr's ``rin -> rout`` resampler as super-block matrix (see the module docstring)."""

    rin: int
    rout: int
    up: int  # L
    down: int  # M
    half: int  # inputs read before the super-block's first input
    group: int  # G
    slices: int  # R
    matrix: np.ndarray  # (R G M, G L)
    head: np.ndarray  # (HEAD_OUTPUTS, K): the first outputs from the first K inputs

    @property
    def block_in(self) -> int:
        return self.group * self.down

    @property
    def block_out(self) -> int:
        return self.group * self.up


def _period_response(rin: int, rout: int, up: int, down: int, half: int) -> np.ndarray:
    """``W[p, u]``: weight of input ``j M - half + u`` in output ``j L + p``."""
    start = 2 * half // down + 4  # a period far from the edges
    length = (start + 2) * down + 4 * half + 10
    response = np.zeros((up, down + 2 * half))
    for u in range(down + 2 * half):
        impulse = np.zeros(length, dtype=np.float32)
        impulse[start * down + u - half] = 1.0
        response[:, u] = resample(impulse, rin, rout)[start * up : start * up + up]
    return response


@lru_cache(maxsize=8)
def polyphase(rin: int, rout: int) -> Polyphase:
    """soxr's resampler ``rin -> rout`` (a pair of :data:`_HALF_WIDTH`), read from soxr."""
    half = _HALF_WIDTH[(rin, rout)]
    common = math.gcd(rin, rout)
    up, down = rout // common, rin // common
    response = _period_response(rin, rout, up, down, half)
    # the smallest G whose super-block needs at most _MAX_SLICES input blocks
    group = next(
        g for g in range(1, 1 << 12) if math.ceil((g * down + 2 * half) / (g * down)) <= _MAX_SLICES
    )
    slices = math.ceil((group * down + 2 * half) / (group * down))
    matrix = np.zeros((slices * group * down, group * up))
    for q in range(group):  # period q of the super-block: inputs shifted by q M
        matrix[q * down : q * down + down + 2 * half, q * up : (q + 1) * up] = response.T
    n_head_inputs = half + HEAD_OUTPUTS * down // up + 2
    head = np.zeros((HEAD_OUTPUTS, n_head_inputs))
    for j in range(n_head_inputs):
        impulse = np.zeros(4 * n_head_inputs, dtype=np.float32)
        impulse[j] = 1.0
        head[:, j] = resample(impulse, rin, rout)[:HEAD_OUTPUTS]
    return Polyphase(rin, rout, up, down, half, group, slices, matrix, head)


def _taps(g: Graph, taps: np.ndarray, dtype: type) -> str:
    """Taps stored as float32 (half the file), cast once at load for float64 products."""
    stored = g.const(taps.astype(np.float32))
    return stored if dtype is np.float32 else str(g.Cast(stored, to=DOUBLE))


def _resample_branch(g: Graph, y: str, sr: str, plan: Polyphase, precision: StftPrecision) -> str:
    """1-D ``y`` resampled by ``plan`` to ``ceil(len(y) rout / rin)`` samples (a Loop over
    chunks of super-blocks), with soxr's first outputs and trailing zeros.

    In float64 the products are summed in double and rounded once to float32, so that any
    runtime (onnxruntime native or WebAssembly) gives the same samples: features such as
    the contrast valleys read the signal 140 dB below its peak, where float32 summation
    order would show.
    """
    dtype = np.float64 if precision == "float64" else np.float32
    per_iteration = max(1, _OUTPUTS_PER_ITERATION // plan.block_out)
    n = dim(g, y, 0)
    n_out = output_length(g, n, sr, plan.rout, "ceil")
    n_super = ceil_div(g, n_out, plan.block_out)
    n_iterations = ceil_div(g, n_super, per_iteration)
    n_blocks = g.Add(g.Mul(n_iterations, per_iteration), plan.slices - 1)
    length = g.Mul(n_blocks, plan.block_in)
    padded = take(
        g, g.Pad(y, vec(g, plan.half, g.Max(g.Sub(length, g.Add(n, plan.half)), 0))), 0, length
    )
    blocks = g.Reshape(padded, vec(g, -1, plan.block_in))

    body = g.body("resample")
    i = body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    first = body.Mul(i, per_iteration)
    window = take(body, blocks, first, body.Add(first, per_iteration + plan.slices - 1))
    if dtype is np.float64:  # per chunk: a double copy of the whole signal would be large
        window = body.Cast(window, to=DOUBLE)
    frames = body.Concat(
        *(take(body, window, r, r + per_iteration) for r in range(plan.slices)), axis=1
    )
    out = body.Cast(body.MatMul(frames, _taps(g, plan.matrix, dtype)), to=FLOAT)
    body.output(body.Identity(True), body.fresh("cond_out"), BOOL, [])
    body.output(out, body.fresh("out"), FLOAT, [per_iteration, plan.block_out])
    stacked = g.Loop(n_iterations, True, body=body.proto())

    head_inputs = plan.head.shape[1]
    head_signal = take(g, g.Pad(y, vec(g, 0, head_inputs)), 0, head_inputs)
    head = g.Cast(
        g.MatMul(_taps(g, plan.head, dtype), g.Cast(head_signal, to=_ONNX[dtype])), to=FLOAT
    )
    body_out = take(g, g.Reshape(stacked, vec(g, -1)), HEAD_OUTPUTS, n_out)
    resampled = g.Concat(head, body_out, axis=0)
    kept = g.Less(g.Range(0, n_out, 1), output_length(g, n, sr, plan.rout, "round"))
    return str(g.Where(kept, resampled, 0.0))


def output_length(g: Graph, n: str, rin: str, rout: int, rounding: str) -> str:
    """``ceil(n rout / rin)`` (``resample``'s length) or ``floor(n rout / rin + 0.5)``
    (soxr's), in float64 as in Python."""
    scaled = g.Div(
        g.Mul(g.Cast(n, to=DOUBLE), g.const(float(rout), np.float64)), g.Cast(rin, to=DOUBLE)
    )
    rounded = (
        g.Ceil(scaled) if rounding == "ceil" else g.Floor(g.Add(scaled, g.const(0.5, np.float64)))
    )
    return str(g.Cast(rounded, to=INT64))


def is_one_of(g: Graph, sr: str, rates: Sequence[int]) -> str:
    """bool scalar: ``sr`` is one of ``rates``."""
    return str(
        g.Cast(
            g.ReduceMax(
                g.Cast(g.Equal(g.const(np.array(rates, np.int64)), sr), to=INT64), keepdims=0
            ),
            to=BOOL,
        )
    )


def resample_from(g: Graph, y: str, sr: str, rout: int, precision: StftPrecision) -> str:
    """1-D ``y`` at ``sr`` (int64 value) resampled to ``rout`` as soxr does.

    Rates of :data:`RESAMPLED_RATES` and ``rout`` itself are handled (an ``If`` per rate);
    any other rate passes ``y`` through unchanged: the caller must flag its result.
    """
    result = y  # the identity when sr == rout
    for rin in RESAMPLED_RATES:
        then = g.body(f"from_{rin}")
        resampled = _resample_branch(then, y, sr, polyphase(rin, rout), precision)
        then.output(resampled, then.fresh("y"), FLOAT, [None])
        otherwise = g.body(f"not_{rin}")
        otherwise.output(otherwise.Identity(result), otherwise.fresh("y"), FLOAT, [None])
        result = g.If(g.Equal(sr, rin), then_branch=then.proto(), else_branch=otherwise.proto())
    return str(result)


def decimate(g: Graph, y: str, rin: int, rout: int, precision: StftPrecision) -> str:
    """1-D ``y`` at the fixed rate ``rin`` resampled to ``rout`` as soxr does."""
    return _resample_branch(g, y, g.const(np.int64(rin)), polyphase(rin, rout), precision)
