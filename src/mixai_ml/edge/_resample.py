"""Integer-factor decimation in the graph with soxr's own filter.

Decimating by an integer factor, soxr ("HQ") is a linear, shift-invariant FIR filter
followed by keeping every ``factor``-th sample. Its taps are read here by resampling unit
impulses (one per input phase) with ``mixai_inference.audio.resample`` itself, so the
graph's strided Conv reproduces soxr to float32 rounding (~3e-7 of full scale), edges
included (soxr zero-pads the signal, like the Conv).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mixai_inference.audio import resample
from mixai_ml.edge._dsp import dim, vec
from mixai_ml.edge._graph import Graph

__all__ = ["decimate", "soxr_decimation_taps"]

HALF_WIDTH = 200  # taps each side of the centre: the rest of soxr's response is below 1e-7


@lru_cache(maxsize=4)
def soxr_decimation_taps(rate: int, factor: int, half_width: int = HALF_WIDTH) -> np.ndarray:
    """``h[d]`` for ``d = -half_width .. half_width``: ``out[m] = sum_d h[d] x[factor m - d]``."""
    if rate % factor:
        raise ValueError(f"{rate} Hz is not divisible by {factor}")
    length = 4 * half_width * factor + 1
    centre = length // 2
    taps = np.zeros(2 * half_width + 1)
    for phase in range(factor):
        impulse = np.zeros(length, dtype=np.float32)
        impulse[centre + phase] = 1.0
        response = resample(impulse, rate, rate // factor).astype(np.float64)
        d = factor * np.arange(len(response)) - (centre + phase)
        inside = np.abs(d) <= half_width
        taps[d[inside] + half_width] = response[inside]
    taps.flags.writeable = False
    return taps


def decimate(g: Graph, y: str, rate: int, factor: int) -> str:
    """1-D ``y`` at ``rate`` -> ``ceil(len / factor)`` samples at ``rate / factor``, as soxr."""
    taps = soxr_decimation_taps(rate, factor)
    half = len(taps) // 2
    n = dim(g, y, 0)
    n_out = g.Div(g.Add(n, factor - 1), factor)
    # output m reads y[factor m - half .. factor m + half]
    right = g.Sub(g.Add(g.Mul(g.Sub(n_out, 1), factor), half + 1), n)
    padded = g.Pad(y, vec(g, half, g.Max(right, 0)))
    kernel = g.const(taps[::-1].astype(np.float32).reshape(1, 1, -1))
    out = g.Conv(g.Reshape(padded, vec(g, 1, 1, -1)), kernel, strides=[factor])
    return str(g.Reshape(out, vec(g, -1)))
