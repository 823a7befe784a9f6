"""Loudness, peaks and stereo image at the original sample rate, in the graph.

K-weighting is the exact IIR filter of ``mixai_inference.loudness.k_weighting_filter``
(the two biquads as one 4-state system), run in blocks of ``BLOCK`` samples:

* inside a block from a zero state, ``y = T x`` with ``T`` the Toeplitz matrix of the
  impulse response (one MatMul);
* the state after each block, ``s_b = M s_(b-1) + K x_b`` with ``M = A^BLOCK``, by a
  parallel prefix scan (``s += M^(2^j) s[shifted by 2^j]``) whose ``SCAN_STEPS`` steps
  cover the filter's memory;
* each block's response to its incoming state, ``y += O s``.

The matrices are computed in float64 per supported sample rate, in the real Schur basis
of the state matrix (orthogonal, so rounding them to float32 keeps the poles where they
are: the high pass's double pole near z = 1 is ill-conditioned in direct form), and
stacked into tables the graph indexes by the ``sample_rate`` input. The audio is processed
in chunks (an ONNX Loop carrying the filter state and the peaks), each a whole number of
blocks and of 100 ms sub-blocks, so memory stays bounded for long files.

True peak is the same 4x polyphase FIR as ``true_peak_dbtp``, as a Conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.linalg

from mixai_inference import FEATURE_CONFIG
from mixai_inference.loudness import (
    ABSOLUTE_GATE_LUFS,
    LOUDNESS_FLOOR_LUFS,
    LRA_PERCENTILES,
    LRA_RELATIVE_GATE_LU,
    MOMENTARY_SUBBLOCKS,
    RELATIVE_GATE_LU,
    SHORT_TERM_SUBBLOCKS,
    SUBBLOCK_S,
    k_weighting_filter,
    true_peak_phases,
)
from mixai_ml.edge._dsp import (
    DB_PER_LOG,
    amplitude_db,
    ceil_div,
    count,
    dim,
    item,
    masked_mean,
    power_db,
    select_or,
    sliding_sum,
    stats,
    take,
    vec,
)
from mixai_ml.edge._graph import BOOL, FLOAT, INT64, Graph
from mixai_ml.edge._resample import is_one_of

__all__ = ["NativeFeatures", "native_features", "rate_tables"]

BLOCK = 64
_STATES = 4
_CHUNK_TARGET = 1 << 19  # samples per channel per Loop iteration (about 10 s at 48 kHz)
_SCAN_TOLERANCE = 1e-10  # neglected state contribution, relative


def _biquad_state_space(b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(A, B, C, D)`` of a transposed direct form II biquad: y = C s + D x, s' = A s + B x."""
    state = np.array([[-a[1], 1.0], [-a[2], 0.0]])
    drive = np.array([[b[1] - a[1] * b[0]], [b[2] - a[2] * b[0]]])
    return state, drive, np.array([[1.0, 0.0]]), np.array([[b[0]]])


def _k_weighting_state_space(sr: int) -> tuple[np.ndarray, ...]:
    """The two K-weighting biquads in cascade as one 4-state system, in real Schur form."""
    (a1, b1, c1, d1), (a2, b2, c2, d2) = (
        _biquad_state_space(b, a) for b, a in k_weighting_filter(sr)
    )
    state = np.block([[a1, np.zeros((2, 2))], [b2 @ c1, a2]])
    drive = np.vstack([b1, b2 @ d1])
    out = np.hstack([d2 @ c1, c2])
    schur, basis = scipy.linalg.schur(state, output="real")
    return schur, basis.T @ drive, out @ basis, d2 @ d1


@dataclass(frozen=True)
class _RateTables:
    rates: np.ndarray  # (R,) int64
    toeplitz_t: np.ndarray  # (R, BLOCK, BLOCK): y_block = x_block @ toeplitz_t
    state_out_t: np.ndarray  # (R, _STATES, BLOCK): y_block += s_in @ state_out_t
    state_in_t: np.ndarray  # (R, BLOCK, _STATES): s_out = s_in @ M^T + x_block @ state_in_t
    powers_t: np.ndarray  # (R, SCAN_STEPS, _STATES, _STATES): (M^(2^j))^T
    chunk: np.ndarray  # (R,) int64 samples per Loop iteration


@lru_cache(maxsize=4)
def rate_tables(rates: tuple[int, ...]) -> _RateTables:
    """Block-IIR matrices of the K-weighting filter at each of ``rates`` (float64 math)."""
    toeplitz, state_out, state_in, powers, chunks = [], [], [], [], []
    steps = 0
    for sr in rates:
        a, b, c, d = _k_weighting_state_space(sr)
        a_powers = [np.eye(_STATES)]
        for _ in range(BLOCK):
            a_powers.append(a @ a_powers[-1])
        impulse = np.concatenate(
            [d.ravel(), [(c @ a_powers[m] @ b).item() for m in range(BLOCK - 1)]]
        )
        lags = np.subtract.outer(np.arange(BLOCK), np.arange(BLOCK))  # j - i
        toeplitz.append(np.where(lags >= 0, impulse[np.maximum(lags, 0)], 0.0).T)
        state_out.append(np.hstack([(c @ a_powers[j]).T for j in range(BLOCK)]))
        state_in.append(np.hstack([a_powers[BLOCK - 1 - i] @ b for i in range(BLOCK)]).T)
        squared = [a_powers[BLOCK]]
        while np.linalg.norm(squared[-1], 2) > _SCAN_TOLERANCE:
            squared.append(squared[-1] @ squared[-1])
        powers.append([m.T for m in squared])
        steps = max(steps, len(squared))
        group = 10 // math.gcd(sr, 10) * sr // 10  # samples of a whole number of sub-blocks
        unit = math.lcm(BLOCK, group)
        chunks.append(unit * max(1, round(_CHUNK_TARGET / unit)))
    padded_powers = [p + [np.zeros((_STATES, _STATES))] * (steps - len(p)) for p in powers]
    return _RateTables(
        rates=np.array(rates, dtype=np.int64),
        toeplitz_t=np.array(toeplitz, dtype=np.float32),
        state_out_t=np.array(state_out, dtype=np.float32),
        state_in_t=np.array(state_in, dtype=np.float32),
        powers_t=np.array(padded_powers, dtype=np.float32),
        chunk=np.array(chunks, dtype=np.int64),
    )


def _subblock_layout(g: Graph, sr: str) -> tuple[str, str, str]:
    """``(group, per_group, indicator)``: sub-blocks ``[floor(k sr / 10), floor((k+1) sr / 10))``
    come in groups of ``per_group = 10 / gcd(sr, 10)`` spanning ``group`` samples exactly;
    ``indicator`` ``(group, per_group)`` sums a group's samples into its sub-blocks."""
    even = g.Equal(g.Mod(sr, 2), 0)
    fifth = g.Equal(g.Mod(sr, 5), 0)
    divisor = g.Mul(g.Where(even, 2, 1), g.Where(fifth, 5, 1))
    per_group = g.Div(10, divisor)
    group = g.Div(g.Mul(per_group, sr), 10)
    bounds = g.Div(g.Mul(g.Range(0, g.Add(per_group, 1), 1), sr), 10)  # (per_group + 1,)
    index = g.Unsqueeze(g.Range(0, group, 1), vec(g, 1))
    inside = g.And(
        g.GreaterOrEqual(index, g.Unsqueeze(take(g, bounds, 0, -1), vec(g, 0))),
        g.Less(index, g.Unsqueeze(take(g, bounds, 1, g.Add(per_group, 1)), vec(g, 0))),
    )
    return group, per_group, g.Cast(inside, to=FLOAT)


@dataclass(frozen=True)
class NativeFeatures:
    """Value names of the native-rate families."""

    loudness: str  # (5,) integrated, momentary max, short-term max, LRA, true peak
    sample_peak_db: str
    crest_factor_db: str
    stereo_correlation: str  # (4,) stats
    stereo_width: str  # (4,) stats


def _block_iir(g: Graph, x: str, state: str, tables: dict[str, str], steps: int) -> tuple[str, str]:
    """K-weight ``x`` ``(C, chunk)`` from ``state`` ``(C, 4)``; returns ``(y, new state)``."""
    blocks = g.Reshape(x, vec(g, 0, -1, BLOCK))  # (C, nb, BLOCK)
    carried = g.Unsqueeze(g.MatMul(state, item(g, tables["powers"], 0)), vec(g, 1))  # M s_in
    n_blocks = dim(g, blocks, 1)
    drive = g.MatMul(blocks, tables["state_in"])  # (C, nb, 4)
    scan = g.Add(drive, g.Pad(carried, vec(g, 0, 0, 0, 0, g.Sub(n_blocks, 1), 0)))
    for j in range(steps):
        shift = 1 << j
        shifted = take(g, g.Pad(scan, vec(g, 0, shift, 0, 0, 0, 0)), 0, n_blocks, axis=1)
        scan = g.Add(scan, g.MatMul(shifted, item(g, tables["powers"], j)))
    before = g.Concat(g.Unsqueeze(state, vec(g, 1)), take(g, scan, 0, -1, axis=1), axis=1)
    y = g.Add(g.MatMul(blocks, tables["toeplitz"]), g.MatMul(before, tables["state_out"]))
    return g.Reshape(y, vec(g, 0, -1)), item(g, scan, -1, axis=1)


def _subblock_sums(g: Graph, values: str, layout: tuple[str, str, str]) -> str:
    """``(k, chunk)`` per-sample values -> ``(chunk_subblocks, k)`` sub-block sums."""
    group, _, indicator = layout
    grouped = g.Reshape(values, vec(g, 0, -1, group))
    sums = g.MatMul(grouped, indicator)  # (k, n_groups, per_group)
    return g.Transpose(g.Reshape(sums, vec(g, 0, -1)), perm=[1, 0])


def _measure_chunks(g: Graph, audio: str, sr: str, tables: dict[str, str], steps: int, chunk: str):
    """Loop over chunks: sub-block sums ``(n_sub, C + 2)`` of [K-weighted energy (channels
    summed), x_c^2 for each channel, x_0 x_(C-1)] and the sample / true peak amplitudes."""
    n_channels, n = dim(g, audio, 0), dim(g, audio, 1)
    n_chunks = ceil_div(g, n, chunk)
    phases = true_peak_phases()
    taps = phases.shape[1]
    before, after = taps // 2 - 1, taps // 2
    # each chunk reads ``before`` samples before and ``after`` after it, zeros beyond the ends
    # (padded per chunk: a padded copy of the whole audio would double the memory)
    layout = _subblock_layout(g, sr)

    body = g.body("native")
    i = body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    state = body.input(body.fresh("state"), FLOAT, [None, _STATES])
    peak = body.input(body.fresh("peak"), FLOAT, [])
    true_peak = body.input(body.fresh("true_peak"), FLOAT, [])
    start = body.Mul(i, chunk)
    first = body.Sub(start, before)
    last = body.Add(start, body.Add(chunk, after))
    inside = take(body, audio, body.Max(first, 0), body.Min(last, n), axis=1)
    lead = body.Max(body.Neg(first), 0)
    trail = body.Sub(body.Sub(last, first), body.Add(lead, dim(body, inside, 1)))
    context = body.Pad(inside, vec(body, 0, lead, 0, trail))
    x = take(body, context, before, body.Add(chunk, before), axis=1)
    y, new_state = _block_iir(body, x, state, tables, steps)
    energy = body.ReduceSumSquare(y, vec(body, 0), keepdims=1)
    cross = body.Mul(take(body, x, 0, 1), take(body, x, -1, n_channels))
    per_sample = body.Concat(energy, body.Mul(x, x), cross, axis=0)
    sums = _subblock_sums(body, per_sample, layout)
    interpolated = body.Conv(
        body.Unsqueeze(context, vec(body, 1)), body.const(phases[:, np.newaxis, :])
    )
    body.output(body.Identity(True), body.fresh("cond_out"), BOOL, [])
    body.output(new_state, body.fresh("state_out"), FLOAT, [None, _STATES])
    body.output(
        body.Max(peak, body.ReduceMax(body.Abs(x), keepdims=0)), body.fresh("peak_out"), FLOAT, []
    )
    body.output(
        body.Max(true_peak, body.ReduceMax(body.Abs(interpolated), keepdims=0)),
        body.fresh("tp_out"),
        FLOAT,
        [],
    )
    body.output(sums, body.fresh("sums"), FLOAT, [None, None])

    zero_state = g.Expand(g.const(np.zeros((1, _STATES), np.float32)), vec(g, n_channels, _STATES))
    _, peak_out, true_peak_out, stacked = g.Loop(
        n_chunks, True, zero_state, 0.0, 0.0, body=body.proto(), outputs=4
    )
    n_sub = g.Div(g.Mul(n, 10), sr)  # complete 100 ms sub-blocks
    flat = g.Reshape(stacked, vec(g, -1, g.Add(n_channels, 2)))
    return take(g, flat, 0, n_sub), peak_out, g.Max(peak_out, true_peak_out), n_sub


def _lufs(g: Graph, mean_square: str) -> str:
    return str(g.Add(g.Mul(g.Log(mean_square), DB_PER_LOG), -0.691))


def _window_mean_square(g: Graph, energy: str, width: int, sr_f: str) -> str:
    return str(g.Div(sliding_sum(g, energy, width), g.Mul(sr_f, width * SUBBLOCK_S)))


def _integrated(g: Graph, blocks: str) -> str:
    loudness = _lufs(g, blocks)
    above = g.Greater(loudness, ABSOLUTE_GATE_LUFS)
    relative = g.Add(_lufs(g, masked_mean(g, blocks, above)), RELATIVE_GATE_LU)
    gated = g.And(above, g.Greater(loudness, relative))
    value = _lufs(g, masked_mean(g, blocks, gated))
    return str(g.Where(g.Greater(count(g, above), 0), value, LOUDNESS_FLOOR_LUFS))


def _loudness_range(g: Graph, short_term: str) -> str:
    """EBU Tech 3342: gated short-term loudness, 95th minus 10th percentile (linear)."""
    above = g.Greater(short_term, ABSOLUTE_GATE_LUFS)
    power = g.Exp(g.Mul(g.Where(above, short_term, 0.0), math.log(10.0) / 10.0))
    relative = g.Mul(g.Log(masked_mean(g, power, above)), DB_PER_LOG)
    gated = g.And(above, g.Greater(short_term, g.Add(relative, LRA_RELATIVE_GATE_LU)))
    m = count(g, gated)
    n = dim(g, short_term, 0)
    ordered = g.TopK(
        g.Where(gated, short_term, np.float32(np.inf)),
        g.Reshape(n, vec(g, 1)),
        largest=0,
        outputs=2,
    )[0]
    last = g.Cast(g.Max(g.Sub(m, 1), 0), to=FLOAT)
    low_high = []
    for percentile in LRA_PERCENTILES:
        position = g.Mul(last, percentile / 100.0)
        below = g.Floor(position)
        lo = g.Cast(below, to=INT64)
        hi = g.Min(g.Add(lo, 1), g.Max(g.Sub(m, 1), 0))
        a, b = item(g, ordered, lo), item(g, ordered, hi)
        low_high.append(g.Add(a, g.Mul(g.Sub(b, a), g.Sub(position, below))))
    spread = g.Sub(low_high[1], low_high[0])
    return str(g.Where(g.GreaterOrEqual(m, 2), spread, 0.0))


def _stereo_image(g: Graph, sums: str, n_channels: str, sr_f: str) -> tuple[str, str]:
    """Stats of the per-block L/R correlation and side-energy share (see features.py)."""
    left = sliding_sum(g, item(g, sums, 1, axis=1), MOMENTARY_SUBBLOCKS)
    right = sliding_sum(g, item(g, sums, n_channels, axis=1), MOMENTARY_SUBBLOCKS)
    cross = sliding_sum(g, item(g, sums, g.Add(n_channels, 1), axis=1), MOMENTARY_SUBBLOCKS)
    both = g.Add(left, right)
    mean_square = g.Div(both, g.Mul(sr_f, 2.0 * MOMENTARY_SUBBLOCKS * SUBBLOCK_S))
    gate = 10.0 ** (FEATURE_CONFIG["stereo_gate_dbfs"] / 10.0)
    audible = g.And(g.Greater(mean_square, gate), g.Equal(n_channels, 2))
    correlation = g.Clip(g.Div(cross, g.Sqrt(g.Mul(left, right))), -1.0, 1.0)
    correlation = g.Where(g.Greater(g.Mul(left, right), 0.0), correlation, 0.0)
    width = g.Div(g.Sub(both, g.Mul(cross, 2.0)), g.Mul(both, 2.0))
    column = vec(g, -1, 1)
    return (
        stats(g, g.Reshape(select_or(g, correlation, audible, 1.0), column)),
        stats(g, g.Reshape(select_or(g, g.Where(audible, width, 0.0), audible, 0.0), column)),
    )


def native_features(g: Graph, audio: str, sr: str, rates: tuple[int, ...]) -> NativeFeatures:
    """Loudness, peaks, crest factor and stereo image of ``audio`` ``(C, n)`` at ``sr``, one
    of ``rates``."""
    tables_np = rate_tables(rates)
    index = g.ArgMax(g.Cast(g.Equal(g.const(tables_np.rates), sr), to=INT64), axis=0, keepdims=0)
    # another rate: measure as if it were the first one (the caller flags the result)
    sr = g.Where(is_one_of(g, sr, rates), sr, g.const(tables_np.rates[0]))
    tables = {
        name: item(g, g.const(getattr(tables_np, attr)), index)
        for name, attr in (
            ("toeplitz", "toeplitz_t"),
            ("state_out", "state_out_t"),
            ("state_in", "state_in_t"),
            ("powers", "powers_t"),
        )
    }
    chunk = item(g, g.const(tables_np.chunk), index)
    steps = tables_np.powers_t.shape[1]
    sums, peak, true_peak, n_sub = _measure_chunks(g, audio, sr, tables, steps, chunk)
    sr_f = g.Cast(sr, to=FLOAT)
    n_channels = dim(g, audio, 0)

    energy = item(g, sums, 0, axis=1)
    blocks = _window_mean_square(g, energy, MOMENTARY_SUBBLOCKS, sr_f)
    short_term = _lufs(g, _window_mean_square(g, energy, SHORT_TERM_SUBBLOCKS, sr_f))
    loudness = g.Concat(
        *(
            g.Reshape(value, vec(g, 1))
            for value in (
                _integrated(g, blocks),
                g.Max(g.ReduceMax(_lufs(g, blocks), keepdims=0), LOUDNESS_FLOOR_LUFS),
                g.Max(g.ReduceMax(short_term, keepdims=0), LOUDNESS_FLOOR_LUFS),
                _loudness_range(g, short_term),
                amplitude_db(g, true_peak),
            )
        ),
        axis=0,
    )
    squares = take(g, sums, 1, g.Add(n_channels, 1), axis=1)
    n_measured = g.Div(g.Mul(n_sub, sr), 10)
    mean_square = g.Div(
        g.ReduceSum(squares, keepdims=0), g.Cast(g.Mul(n_measured, n_channels), to=FLOAT)
    )
    peak_db = amplitude_db(g, peak)
    correlation, width = _stereo_image(g, sums, n_channels, sr_f)
    return NativeFeatures(
        loudness=loudness,
        sample_peak_db=peak_db,
        crest_factor_db=g.Sub(peak_db, power_db(g, mean_square)),
        stereo_correlation=correlation,
        stereo_width=width,
    )
