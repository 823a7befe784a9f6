"""Tempo and beat tracking in the graph, step for step as ``mixai_inference._rhythm``.

* Tempo: the time-averaged, lag-0-normalised autocorrelation of Hann-windowed onset frames
  is ``sum_m G[m, m + l]`` with ``G = F^T diag(1 / lag0) F`` (``F`` the windowed frames):
  one matrix product and a diagonal sum instead of an FFT per frame. The log-normal prior
  and the BPM of each lag are constants.
* Beats: Ellis' dynamic program as an ONNX Loop over blocks of ``round(fpb / 2)`` frames
  (a frame only depends on frames at least that much earlier), scores in float64 and the
  cumulative score stored in float32, exactly as the numpy code does; the backtracking is
  a second Loop; trimming and the local-maximum / median threshold are vectorised.
"""

from __future__ import annotations

import numpy as np

from mixai_inference._rhythm import tempo_frequencies
from mixai_inference._spectral import hann_window
from mixai_ml.edge._dsp import TINY32, count, dim, item, take, vec
from mixai_ml.edge._graph import BOOL, DOUBLE, FLOAT, INT64, Graph

__all__ = ["beat_frames", "tempo"]


def _onset_frames_transposed(g: Graph, onset: str, win: int) -> str:
    """``(win, T)``: column ``t`` is ``padded[t : t + win]``, ``padded`` the onset envelope
    with ``win // 2`` linear-ramp values to 0 on each side (``np.pad(mode="linear_ramp")``).

    Built without an index matrix: a vector of length L tiled and re-read with rows of
    length L + 1 is shifted by one more element on every row.
    """
    half = win // 2
    n = dim(g, onset, 0)
    ramp_up = g.const((np.arange(half) / half).astype(np.float32))
    ramp_down = g.const(((half - 1 - np.arange(half)) / half).astype(np.float32))
    first, last = take(g, onset, 0, 1), take(g, onset, -1, g.const(np.iinfo(np.int64).max))
    padded = g.Concat(g.Mul(first, ramp_up), onset, g.Mul(last, ramp_down), axis=0)
    row = g.Add(n, 2 * half + 1)  # len(padded) + 1
    tiled = take(g, g.Tile(padded, vec(g, win + 1)), 0, g.Mul(row, win))
    rows = g.Reshape(tiled, vec(g, win, row))
    return take(g, rows, 0, n, axis=1)


def tempo(g: Graph, onset: str, sr: int, hop: int, cfg: dict) -> tuple[str, str]:
    """Global tempo (float32 BPM scalar) and its lag in frames (int64 scalar).

    As ``mixai_inference._rhythm.tempo``: ``argmax(log1p(1e6 acf) + log_prior)``.
    """
    win = int(np.floor(cfg["ac_size"] * sr) // hop)
    frames = g.Mul(
        _onset_frames_transposed(g, onset, win),
        g.const(hann_window(win).astype(np.float32)[:, np.newaxis]),
    )
    lag0 = g.ReduceSumSquare(frames, vec(g, 0), keepdims=1)  # (1, T)
    scale = g.Where(g.GreaterOrEqual(lag0, TINY32), g.Reciprocal(g.Max(lag0, TINY32)), 0.0)
    gram = g.MatMul(g.Mul(frames, scale), g.Transpose(frames, perm=[1, 0]))  # (win, win)
    # acf[l] = sum_m gram[m, m + l]: rows of the flattened gram re-read with length win + 1
    skewed = g.Reshape(g.Pad(g.Reshape(gram, vec(g, -1)), vec(g, 0, win)), vec(g, win, win + 1))
    valid = np.add.outer(np.arange(win), np.arange(win + 1)) < win
    summed = g.ReduceSum(g.Mul(skewed, g.const(valid.astype(np.float32))), vec(g, 0), keepdims=0)
    mean_acf = g.Div(take(g, summed, 0, win), g.Cast(dim(g, onset, 0), to=FLOAT))

    bpms = tempo_frequencies(win, hop, sr)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_prior = -0.5 * ((np.log2(bpms) - np.log2(cfg["start_bpm"])) / cfg["std_bpm"]) ** 2
    log_prior[: int(np.argmax(bpms < cfg["max_tempo"]))] = -np.inf
    score = g.Add(g.Log(g.Add(g.Mul(mean_acf, 1e6), 1.0)), g.const(log_prior.astype(np.float32)))
    lag = g.ArgMax(score, axis=0, keepdims=0)
    return item(g, g.const(bpms.astype(np.float32)), lag), lag


def _local_score(g: Graph, onset: str, fpb: str) -> str:
    """Onsets / (std (ddof 1) + tiny), smoothed by a Gaussian of +-fpb frames (same size)."""
    n_f = g.Cast(dim(g, onset, 0), to=FLOAT)
    mean = g.ReduceMean(onset, keepdims=0)
    var = g.Div(g.ReduceSum(g.Pow(g.Sub(onset, mean), 2.0), keepdims=0), g.Sub(n_f, 1.0))
    normalized = g.Div(onset, g.Add(g.Sqrt(var), TINY32))
    fpb_f = g.Cast(fpb, to=FLOAT)
    offsets = g.Cast(g.Range(g.Neg(fpb), g.Add(fpb, 1), 1), to=FLOAT)
    window = g.Exp(g.Mul(g.Pow(g.Div(g.Mul(offsets, 32.0), fpb_f), 2.0), -0.5))
    padded = g.Pad(normalized, vec(g, fpb, fpb))
    conv = g.Conv(g.Reshape(padded, vec(g, 1, 1, -1)), g.Reshape(window, vec(g, 1, 1, -1)))
    return str(g.Reshape(conv, vec(g, -1)))


def _dynamic_program(g: Graph, local: str, fpb: str, tightness: float) -> tuple[str, str]:
    """Cumulative scores (float32) and backlinks (int64) of librosa's beat DP."""
    n = dim(g, local, 0)
    min_gap = g.Cast(g.Round(g.Div(g.Cast(fpb, to=FLOAT), 2.0)), to=INT64)
    gaps = g.Range(min_gap, g.Add(g.Mul(fpb, 2), 1), 1)
    log_fpb = g.Cast(g.Log(g.Cast(fpb, to=FLOAT)), to=DOUBLE)
    penalty = g.Mul(
        g.Pow(g.Sub(g.Log(g.Cast(gaps, to=DOUBLE)), log_fpb), g.const(2.0, np.float64)),
        g.const(tightness, np.float64),
    )
    n_blocks = g.Div(g.Add(n, g.Sub(min_gap, 1)), min_gap)
    padded_n = g.Mul(n_blocks, min_gap)
    local_padded = g.Pad(local, vec(g, 0, g.Sub(padded_n, n)))
    neg_inf = g.const(-np.inf, np.float64)

    body = g.body("beat_dp")
    i = body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    cumscore = body.input(body.fresh("cumscore"), FLOAT, [None])
    backlink = body.input(body.fresh("backlink"), INT64, [None])
    frames = body.Add(body.Range(0, min_gap, 1), body.Mul(i, min_gap))  # (B,)
    candidates = body.Sub(body.Unsqueeze(frames, vec(body, 1)), body.Unsqueeze(gaps, vec(body, 0)))
    valid = body.GreaterOrEqual(candidates, 0)
    previous = body.Cast(body.Gather(cumscore, body.Max(candidates, 0)), to=DOUBLE)
    scores = body.Where(valid, body.Sub(previous, penalty), neg_inf)
    best = body.ArgMax(scores, axis=1, keepdims=1)
    best_score = body.Squeeze(body.GatherElements(scores, best, axis=1), vec(body, 1))
    has_link = body.Squeeze(body.GatherElements(valid, best, axis=1), vec(body, 1))
    link = body.Squeeze(body.GatherElements(candidates, best, axis=1), vec(body, 1))
    gain = body.Where(has_link, best_score, body.const(0.0, np.float64))
    new_score = body.Cast(
        body.Add(body.Cast(body.Gather(local_padded, frames), to=DOUBLE), gain), to=FLOAT
    )
    new_link = body.Where(has_link, link, -1)
    body.output(body.Identity(True), body.fresh("cond_out"), BOOL, [])
    body.output(
        body.ScatterElements(cumscore, frames, new_score, axis=0),
        body.fresh("cumscore_out"),
        FLOAT,
        [None],
    )
    body.output(
        body.ScatterElements(backlink, frames, new_link, axis=0),
        body.fresh("backlink_out"),
        INT64,
        [None],
    )

    zeros = g.ConstantOfShape(g.Reshape(padded_n, vec(g, 1)))  # float32 zeros
    minus_one = g.Expand(g.const(np.int64(-1)), g.Reshape(padded_n, vec(g, 1)))
    cumscore_all, backlink_all = g.Loop(
        n_blocks, True, zeros, minus_one, body=body.proto(), outputs=2
    )
    cumscore_out = take(g, cumscore_all, 0, n)
    backlink_out = take(g, backlink_all, 0, n)
    # Before the first onset louder than 1 % of the maximum, frames start new paths.
    first_beat = g.ArgMax(
        g.Cast(g.GreaterOrEqual(local, g.Mul(g.ReduceMax(local, keepdims=0), 0.01)), to=INT64),
        axis=0,
        keepdims=0,
    )
    before = g.Less(g.Range(0, n, 1), first_beat)
    return cumscore_out, g.Where(before, -1, backlink_out)


def _last_beat(g: Graph, cumscore: str) -> str:
    """Last local maximum of ``cumscore`` reaching half the median of the local maxima."""
    n = dim(g, cumscore, 0)
    inner = take(g, cumscore, 1, -1)
    left, right = take(g, cumscore, 0, -2), take(g, cumscore, 2, n)
    inner_max = g.And(g.Greater(inner, left), g.GreaterOrEqual(inner, right))
    last_max = g.Greater(take(g, cumscore, -1, n), take(g, cumscore, -2, -1))
    is_max = g.Concat(g.const(np.array([False])), inner_max, last_max, axis=0)
    n_max = count(g, is_max)
    ordered = g.TopK(
        g.Where(is_max, cumscore, np.float32(np.inf)), g.Reshape(n, vec(g, 1)), largest=0, outputs=2
    )[0]
    low = g.Div(g.Max(g.Sub(n_max, 1), 0), 2)
    high = g.Div(n_max, 2)
    median = g.Mul(g.Add(item(g, ordered, low), item(g, ordered, g.Min(high, g.Sub(n, 1)))), 0.5)
    threshold = g.Where(g.Greater(n_max, 0), g.Mul(median, 0.5), 0.0)
    candidates = g.And(is_max, g.GreaterOrEqual(cumscore, threshold))
    positions = g.Where(candidates, g.Range(0, n, 1), -1)
    last = g.ReduceMax(positions, keepdims=0)
    return str(g.Where(g.GreaterOrEqual(last, 0), last, g.Sub(n, 1)))


def _backtrack(g: Graph, backlink: str, last: str) -> str:
    """The beat path ending at ``last``, ascending (int64)."""
    body = g.body("backtrack")
    body.input(body.fresh("i"), INT64, [])
    body.input(body.fresh("cond"), BOOL, [])
    frame = body.input(body.fresh("frame"), INT64, [])
    previous = body.Gather(backlink, frame)
    body.output(body.GreaterOrEqual(previous, 0), body.fresh("cond_out"), BOOL, [])
    body.output(previous, body.fresh("frame_out"), INT64, [])
    body.output(body.Identity(frame), body.fresh("path"), INT64, [])
    _, path = g.Loop(dim(g, backlink, 0), True, last, body=body.proto(), outputs=2)
    reversed_path = g.Slice(path, vec(g, -1), vec(g, np.iinfo(np.int64).min), vec(g, 0), vec(g, -1))
    return str(reversed_path)


def beat_frames(g: Graph, onset: str, fpb: str, tightness: float) -> tuple[str, str]:
    """Beat frames of ``librosa.beat.beat_track(onset_envelope=..., bpm)`` with ``trim=True``.

    ``fpb`` is the tempo's lag (frames per beat, int64). Returns ``(beats, keep)``: every
    frame of the path and the mask of the beats trimming keeps (none for a silent envelope).
    """
    local = _local_score(g, onset, fpb)
    cumscore, backlink = _dynamic_program(g, local, fpb, tightness)
    beats = _backtrack(g, backlink, _last_beat(g, cumscore))
    # trim: beats weaker than half the RMS of the smoothed beat scores at either end
    scores = g.Cast(g.Gather(local, beats), to=DOUBLE)
    padded = g.Pad(scores, vec(g, 1, 3))
    m = dim(g, beats, 0)
    smoothed = g.Add(
        g.Add(
            g.Mul(take(g, padded, 0, g.Add(m, 2)), g.const(0.5, np.float64)),
            take(g, padded, 1, g.Add(m, 3)),
        ),
        g.Mul(take(g, padded, 2, g.Add(m, 4)), g.const(0.5, np.float64)),
    )
    threshold = g.Mul(
        g.Sqrt(g.ReduceMean(g.Mul(smoothed, smoothed), keepdims=0)), g.const(0.5, np.float64)
    )
    strong = g.Greater(g.Cast(local, to=DOUBLE), threshold)
    n = dim(g, local, 0)
    index = g.Range(0, n, 1)
    first_strong = g.ReduceMin(g.Where(strong, index, n), keepdims=0)
    last_strong = g.ReduceMax(g.Where(strong, index, -1), keepdims=0)
    keep = g.And(g.GreaterOrEqual(beats, first_strong), g.LessOrEqual(beats, last_strong))
    audible = g.Greater(g.ReduceMax(onset, keepdims=0), 0.0)
    return beats, g.And(keep, audible)
