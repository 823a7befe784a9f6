"""Resampling in the graph with soxr's own filters.

For 44.1 and 48 kHz input (and integer decimation), soxr "HQ" is a linear, periodically
shift-invariant (polyphase) filter: shifting the input by ``M`` samples shifts the output
by ``L`` (``rout / rin = L / M`` in lowest terms). Its taps are read here by resampling
unit impulses with ``mixai_inference.audio.resample`` itself, one per input offset of a
period, so the graph reproduces soxr to float32 rounding (~2.4e-7 of full scale). Only the
first ``L``-periodic start-up differs: soxr primes a rational-ratio filter its own way, so
the first 2-3 output samples of 48 kHz and 44.1 -> 16 kHz input differ by up to 1e-2 of
full scale (nothing can be heard or measured from them; they fall in the first STFT frame).
Higher rates (88.2, 96 kHz, ...) are resampled by soxr in stages that are not one periodic
filter (1e-4 mismatch): a browser decodes such files at 48 kHz first.

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
from mixai_ml.edge._dsp import ceil_div, dim, take, vec
from mixai_ml.edge._graph import BOOL, DOUBLE, FLOAT, INT64, Graph

__all__ = ["RESAMPLED_RATES", "Polyphase", "decimate", "is_one_of", "polyphase", "resample_from"]

#: Input rates the graphs resample exactly, by target rate (plus the target itself).
RESAMPLED_RATES: tuple[int, ...] = (44100, 48000)

# Taps each side needed for 2.4e-7 agreement with soxr (found by trimming until it holds).
_HALF_WIDTH = {(44100, 22050): 200, (48000, 22050): 250, (44100, 16000): 300, (48000, 16000): 300, (16000, 8000): 200}
_OUTPUTS_PER_ITERATION = 1 << 16
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
    matrix: np.ndarray  # (R G M, G L) float32

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
    return Polyphase(rin, rout, up, down, half, group, slices, matrix.astype(np.float32))


def _resample_branch(g: Graph, y: str, n_out: str, plan: Polyphase) -> str:
    """1-D ``y`` resampled by ``plan`` to ``n_out`` samples (a Loop over super-blocks)."""
    per_iteration = max(1, _OUTPUTS_PER_ITERATION // plan.block_out)
    n = dim(g, y, 0)
    n_super = ceil_div(g, n_out, plan.block_out)
    n_iterations = ceil_div(g, n_super, per_iteration)
    n_blocks = g.Add(g.Mul(n_iterations, per_iteration), plan.slices - 1)
    length = g.Mul(n_blocks, plan.block_in)
    padded = take(g, g.Pad(y, vec(g, plan.half, g.Max(g.Sub(length, g.Add(n, plan.half)), 0))), 0, length)
    blocks = g.Reshape(padded, vec(g, -1, plan.block_in))

    body = g.body("resample")
    i = body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    first = body.Mul(i, per_iteration)
    window = take(body, blocks, first, body.Add(first, per_iteration + plan.slices - 1))
    frames = body.Concat(*(take(body, window, r, r + per_iteration) for r in range(plan.slices)), axis=1)
    body.output(body.Identity(True), body.fresh("cond_out"), BOOL, [])
    out = body.MatMul(frames, body.const(plan.matrix))
    body.output(out, body.fresh("out"), FLOAT, [per_iteration, plan.block_out])
    stacked = g.Loop(n_iterations, True, body=body.proto())
    return take(g, g.Reshape(stacked, vec(g, -1)), 0, n_out)


def output_length(g: Graph, n: str, rin: str, rout: int) -> str:
    """``ceil(n * rout / rin)`` in float64, as ``mixai_inference.audio.resample``."""
    scaled = g.Div(g.Mul(g.Cast(n, to=DOUBLE), g.const(float(rout), np.float64)), g.Cast(rin, to=DOUBLE))
    return str(g.Cast(g.Ceil(scaled), to=INT64))


def is_one_of(g: Graph, sr: str, rates: Sequence[int]) -> str:
    """bool scalar: ``sr`` is one of ``rates``."""
    return str(g.Cast(g.ReduceMax(g.Cast(g.Equal(g.const(np.array(rates, np.int64)), sr), to=INT64), keepdims=0), to=BOOL))


def resample_from(g: Graph, y: str, sr: str, rout: int) -> str:
    """1-D ``y`` at ``sr`` (int64 value) resampled to ``rout`` as soxr does.

    Rates of :data:`RESAMPLED_RATES` and ``rout`` itself are handled (an ``If`` per rate);
    any other rate passes ``y`` through unchanged: the caller must flag its result.
    """
    n_out = output_length(g, dim(g, y, 0), sr, rout)
    result = y  # the identity when sr == rout
    for rin in RESAMPLED_RATES:
        then = g.body(f"from_{rin}")
        then.output(_resample_branch(then, y, n_out, polyphase(rin, rout)), then.fresh("y"), FLOAT, [None])
        otherwise = g.body(f"not_{rin}")
        otherwise.output(otherwise.Identity(result), otherwise.fresh("y"), FLOAT, [None])
        result = g.If(g.Equal(sr, rin), then_branch=then.proto(), else_branch=otherwise.proto())
    return str(result)


def decimate(g: Graph, y: str, rin: int, rout: int) -> str:
    """1-D ``y`` at the fixed rate ``rin`` resampled to ``rout`` as soxr does."""
    n_out = output_length(g, dim(g, y, 0), g.const(np.int64(rin)), rout)
    return _resample_branch(g, y, n_out, polyphase(rin, rout))
