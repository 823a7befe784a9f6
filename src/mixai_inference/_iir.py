"""Exact IIR filtering in vectorised numpy (no scipy): ``scipy.signal.lfilter`` for long signals.

A recursive filter is sequential, so a per-sample Python loop would take seconds. Instead
the signal is cut into blocks filtered in parallel from a zero state; inside a block, the
all-pole recursion advances ``step`` samples at a time with one small matrix product
("lifting": the next ``step`` outputs are a linear function of the previous ``order``
outputs and the next ``step`` inputs). Each block's true initial state is then found by a
short scan over blocks, and its zero-input response is added. The result equals direct-form
filtering up to float64 rounding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["IIRState", "lfilter_chunk"]

# 16-sample steps keep each product (16 x 16 by 16 x columns) under OpenBLAS' threshold for
# multithreading: thousands of tiny threaded calls stall when other processes load the CPU.
_STEP = 16


@lru_cache(maxsize=16)
def _lifting(a: tuple[float, ...], step: int, block: int) -> tuple[np.ndarray, ...]:
    """Matrices of ``y[n] = v[n] - sum_k a[k] y[n-k]`` (``a[0] == 1``, order ``p``).

    Returns ``from_state`` ``(step, p)``, ``from_input`` ``(step, step)`` such that
    ``y[j:j+step] = from_state @ y[j-p:j] + from_input @ v[j:j+step]``, and
    ``zero_input`` ``(block, p)``: the block's response to its initial state ``y[-p:]``.
    """
    order = len(a) - 1
    coeffs = np.asarray(a[1:])[::-1]  # multiplies y[n-p], ..., y[n-1]
    history = np.zeros((order + step, order + step))
    history[:order, :order] = np.eye(order)  # columns: unit initial states, then unit inputs
    for n in range(step):
        drive = np.zeros(order + step)
        drive[order + n] = 1.0
        history[order + n] = drive - coeffs @ history[n : n + order]
    from_state = history[order:, :order]
    from_input = history[order:, order:]
    zero_input = np.empty((block, order))
    previous = np.eye(order)
    for j in range(0, block, step):
        zero_input[j : j + step] = from_state @ previous
        previous = zero_input[j + step - order : j + step]
    for matrix in (from_state, from_input, zero_input):
        matrix.flags.writeable = False  # cached: shared by every caller
    return from_state, from_input, zero_input


class IIRState:
    """Filter state carried between consecutive chunks of one multichannel signal."""

    def __init__(self, b: np.ndarray, a: np.ndarray, n_channels: int) -> None:
        if a[0] != 1.0 or len(a) != len(b):
            raise ValueError("expected monic `a` and len(b) == len(a)")
        self.b = np.asarray(b, dtype=np.float64)
        self.a = tuple(float(x) for x in a)
        order = len(a) - 1
        self.inputs = np.zeros((n_channels, order))
        self.outputs = np.zeros((n_channels, order))


def lfilter_chunk(x: np.ndarray, state: IIRState, block: int) -> np.ndarray:
    """Filter the next chunk ``x`` ``(channels, n)`` and update ``state``; float64 output.

    Equals ``scipy.signal.lfilter(b, a, x_all, axis=-1)`` over the concatenated chunks.
    ``block`` (rounded up to a multiple of 16 samples) trades Python-loop iterations inside a
    block against the scan over blocks; about 50 ms of audio suits every sample rate.
    """
    order = len(state.a) - 1
    n_channels, n = x.shape
    block = -(-block // _STEP) * _STEP
    from_state, from_input, zero_input = _lifting(state.a, _STEP, block)

    # Numerator (FIR) part, with the previous chunk's last inputs in front.
    extended = np.concatenate([state.inputs, x], axis=1)
    drive = state.b[0] * extended[:, order:]
    for k in range(1, order + 1):
        drive += state.b[k] * extended[:, order - k : order - k + n]

    # Denominator: blocks in parallel from zero state, rows = time within the block.
    n_blocks = -(-n // block)
    padded = np.zeros((n_channels, n_blocks * block))
    padded[:, :n] = drive
    columns = np.ascontiguousarray(
        padded.reshape(n_channels * n_blocks, block).T
    )  # (block, channels * blocks)
    out = np.empty_like(columns)
    np.matmul(from_input, columns[:_STEP], out=out[:_STEP])
    for j in range(_STEP, block, _STEP):
        np.matmul(from_state, out[j - order : j], out=out[j : j + _STEP])
        out[j : j + _STEP] += from_input @ columns[j : j + _STEP]

    # Scan over blocks for the true initial states, then add their zero-input responses.
    tails = out[block - order :].reshape(order, n_channels, n_blocks)
    end_map = zero_input[block - order :]
    initial = np.empty((order, n_channels, n_blocks))
    carried = state.outputs.T  # (order, channels)
    for blk in range(n_blocks):
        initial[:, :, blk] = carried
        carried = tails[:, :, blk] + end_map @ carried
    for k in range(order):  # elementwise: a (block x order) @ (order x columns) would thread
        out += zero_input[:, k, np.newaxis] * initial[k].reshape(-1)

    y = out.T.reshape(n_channels, n_blocks * block)[:, :n]
    state.inputs = extended[:, -order:].copy()
    # a copy, never a view: callers may overwrite y (loudness squares it in place)
    state.outputs = y[:, -order:].copy()
    return y
