"""The out-of-distribution guard: how far an input lies from a model's training inputs.

Each model ships with an :class:`InputReference` (a JSON file in the bundle, covered by the
manifest's SHA-256; fitted at training by :mod:`mixai_ml.training.reference`):

* a **distance** ``‖(x − center) · projection‖``: a robust Mahalanobis distance (features
  scaled by their median and inter-quartile range, whitened by a shrunk covariance of the
  training rows that remain after trimming the farthest ones);
* a **threshold**: the distance that held-out training rows exceed at the target
  false-alarm rate (1 % by default), calibrated out of fold, by user;
* a **sketch grid** (:class:`Grid`) of each input and each model output on the training rows.

The answer's ``ood_score`` is the distance over the threshold: an input is out of
distribution (``ood``) when its score is above 1. The task's policy decides what that does
(:data:`POLICIES`): ``off`` (not scored), ``flag`` (the model answers, the answer is
marked) or ``fallback`` (the rules answer, reason ``out_of_distribution``).

The sketch (:func:`format_sketch`) writes each scored input and model output as its decile
among the training values, one digit each. Every digit is equally likely for a training
row, so ``monitoring`` measures input and prediction drift from the sketches alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

POLICIES: Final = ("off", "flag", "fallback")
"""What an out-of-distribution input does: nothing (not even scored), a mark, the rules."""
DEFAULT_POLICY: Final = "flag"
"""The policy of a task its bundle does not set."""
ENV_POLICY: Final = "MIXAI_OOD_POLICY"
"""Environment variable: one policy for every task (an operator's override)."""

FORMAT: Final = "mixai-input-reference"
FORMAT_VERSION: Final = 1
SKETCH_BINS: Final = 10
"""A sketch digit is one of ten equally likely bins (deciles)."""
SKETCH_VERSION: Final = "1"
SKETCH_SEPARATOR: Final = "|"
_SKETCH_RE: Final = re.compile(rf"{SKETCH_VERSION}:([0-9]*)\{SKETCH_SEPARATOR}([0-9]*)")


class ReferenceError(ValueError):
    """An input reference that cannot be read or does not follow the format."""


def check_policy(policy: str, what: str = "policy") -> str:
    """``policy`` if it is one of :data:`POLICIES`.

    Raises:
        ValueError: Otherwise, naming the accepted values.
    """
    if policy not in POLICIES:
        raise ValueError(f"{what} must be one of {list(POLICIES)}, got {policy!r}")
    return policy


def env_policy(environ: Mapping[str, str] | None = None) -> str | None:
    """The policy ``MIXAI_OOD_POLICY`` pins for every task, or ``None`` when unset.

    An unknown value is logged and ignored, so a typo never stops a worker.
    """
    raw = (os.environ if environ is None else environ).get(ENV_POLICY, "").strip().lower()
    if not raw:
        return None
    if raw not in POLICIES:
        logger.warning("%s=%r is not one of %s; ignored", ENV_POLICY, raw, list(POLICIES))
        return None
    return raw


@dataclass(frozen=True)
class Grid:
    """Where each of ``n`` values falls among its training values: one decile digit each.

    ``edges (n, 9)``: the deciles. ``atoms (a, 4)``: rows ``(index, value, low, high)`` for
    the values that many training rows share exactly (a flag, a clipped maximum, a tempo on
    the beat grid), whose training CDF jumps from ``low`` to ``high`` there. A value that
    hits an atom draws its decile from the atom's share of each bin (a randomised
    probability integral transform), so that each digit stays equally likely for
    training rows; the draw is seeded by the values, so a sketch is reproducible.
    """

    edges: np.ndarray
    atoms: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.edges)
        if self.edges.ndim != 2 or self.edges.shape[1] != SKETCH_BINS - 1:
            raise ReferenceError(f"grid edges must be (n, {SKETCH_BINS - 1})")
        if self.atoms.shape[1:] != (4,) or not np.isfinite(self.edges).all():
            raise ReferenceError("grid atoms must be (a, 4) and every number finite")
        index, low, high = self.atoms[:, 0], self.atoms[:, 2], self.atoms[:, 3]
        if ((index < 0) | (index >= n) | ~(low <= high) | (low < 0) | (high > 1)).any():
            raise ReferenceError("grid atoms need 0 <= index < n and 0 <= low <= high <= 1")

    @classmethod
    def from_json(cls, data: Any) -> Grid:
        return cls(
            np.asarray(data["edges"], dtype=np.float64).reshape(-1, SKETCH_BINS - 1),
            np.asarray(data["atoms"], dtype=np.float64).reshape(-1, 4),
        )

    def to_json(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "atoms": self.atoms.tolist()}

    @cached_property
    def _serving(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The edges ``(9, n)``, the atoms' indices, values and CDF jumps, as :meth:`bins` uses
        them."""
        atoms = self.atoms
        return (
            np.ascontiguousarray(self.edges.T, dtype=np.float32),
            atoms[:, 0].astype(np.intp),
            atoms[:, 1].astype(np.float32),
            atoms[:, 2:4],
        )

    @cached_property
    def fingerprint(self) -> bytes:
        """Equal for grids of equal content (models fitted on the same inputs)."""
        return hashlib.sha256(self.edges.tobytes() + self.atoms.tobytes()).digest()

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The decile (0–9) of each value, compared in float32; NaN gives 0.

        ``values``: ``(n,)``, or ``(m, n)`` for ``m`` rows at once (one comparison for the
        whole batch); the result has the same shape, ``uint8``.

        Raises:
            ValueError: If the last axis does not hold the grid's ``n`` values.
        """
        values = np.asarray(values, dtype=np.float32)
        n = len(self.edges)
        if values.ndim not in (1, 2) or values.shape[-1] != n:
            raise ValueError(f"the grid sketches {n} values per row, got shape {values.shape}")
        rows = np.ascontiguousarray(values.reshape(-1, n))
        edges, index, atom_values, jumps = self._serving
        bins = np.zeros(rows.shape, dtype=np.uint8)
        for edge in edges:  # the k-th decile of every value (nine passes beat one 3-D sum)
            bins += rows > edge
        if len(index):
            hit = rows[:, index] == atom_values
            if hit.any():
                low, high = jumps[:, 0], jumps[:, 1]
                u = low + _uniforms(rows, len(index)) * (high - low)
                at, atom = np.nonzero(hit)
                bins[at, index[atom]] = np.minimum(u[at, atom] * SKETCH_BINS, SKETCH_BINS - 1)
        return bins.reshape(values.shape)

    def digits(self, values: np.ndarray) -> list[str]:
        """:meth:`bins` of each row ``(m, n)`` as a string of digits (one row: ``(n,)``)."""
        return digit_strings(np.reshape(self.bins(values), (-1, len(self.edges))))


def digit_strings(bins: np.ndarray) -> list[str]:
    """Each row of deciles ``(m, n)`` (0–9) as a string of ``n`` digits."""
    codes = np.asarray(bins).astype(np.uint8) + ord("0")
    text, n = codes.tobytes().decode("ascii"), codes.shape[1]
    return [text[i * n : (i + 1) * n] for i in range(len(codes))]


_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on ``uint64`` (arithmetic wraps modulo 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniforms(rows: np.ndarray, count: int) -> np.ndarray:
    """``count`` numbers in [0, 1) for each float32 row ``(m, n)``, ``(m, count)``.

    A hash of the row's bits seeds them: the same row always draws the same numbers, and a
    row that differs in any value draws unrelated ones (Steele et al. 2014, SplitMix64).
    """
    weights = _mix64(np.arange(1, rows.shape[1] + 1, dtype=np.uint64) * _GOLDEN) | np.uint64(1)
    seeds = (rows.view(np.uint32).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    streams = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
    return (_mix64(seeds[:, None] + streams) >> np.uint64(11)) * 2.0**-53


def format_sketch(inputs: str, outputs: str | None) -> str:
    """A sketch: ``"1:<a digit per input>|<a digit per output>"`` (:meth:`Grid.digits`).

    Nothing follows ``|`` when ``outputs`` is ``None`` (the rules answered).
    """
    return f"{SKETCH_VERSION}:{inputs}{SKETCH_SEPARATOR}{outputs or ''}"


@dataclass(frozen=True)
class InputReference:
    """A model's training inputs, summarised (see the module documentation).

    Shapes: ``center (d,)`` and ``projection (d, k)`` for ``d`` inputs.
    """

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    center: np.ndarray
    projection: np.ndarray
    threshold: float
    """The distance out-of-distribution starts above (``ood_score`` 1)."""
    target_false_alarm_rate: float
    input_grid: Grid
    output_grid: Grid
    info: Mapping[str, Any] = field(default_factory=dict)
    """How it was fitted: method, rows, calibration (free-form JSON)."""

    def __post_init__(self) -> None:
        d, m = len(self.input_names), len(self.output_names)
        problems = []
        if self.center.shape != (d,) or self.projection.ndim != 2 or len(self.projection) != d:
            problems.append(f"center must be ({d},) and projection ({d}, k)")
        if len(self.input_grid.edges) != d or len(self.output_grid.edges) != m:
            problems.append(f"the grids must have {d} inputs and {m} outputs")
        if not (np.isfinite(self.center).all() and np.isfinite(self.projection).all()):
            problems.append("every number must be finite")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            problems.append(f"threshold must be positive, got {self.threshold}")
        if not 0 < self.target_false_alarm_rate < 1:
            problems.append("target_false_alarm_rate must be in (0, 1)")
        if problems:
            raise ReferenceError("input reference: " + "; ".join(problems))

    def distances(self, rows: np.ndarray) -> np.ndarray:
        """The distance of each row ``(n, d)`` from the training inputs, ``(n,)``."""
        centred = np.asarray(rows, dtype=np.float64) - self.center
        return np.sqrt(np.square(centred @ self.projection).sum(axis=1))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """``ood_score`` of each row ``(n, d)``: distance over threshold, ``(n,)``."""
        return self.distances(rows) / self.threshold

    def guard(self, scorers: dict[bytes, Scorer] | None = None) -> Guard:
        """The serving form (float32, the threshold folded in).

        Args:
            scorers: Shared by the guards of a predictor: models fitted on the same inputs
                get the same :class:`Scorer`, so that a call scores its input once.
        """
        key = hashlib.sha256(
            self.center.tobytes() + self.projection.tobytes() + struct.pack("<d", self.threshold)
        ).digest()
        scorers = {} if scorers is None else scorers
        scorer = scorers.setdefault(key, Scorer(self.center, self.projection / self.threshold))
        return Guard(scorer, self.input_grid, self.output_grid)

    # --- the file -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "input_names": list(self.input_names),
            "output_names": list(self.output_names),
            "center": self.center.tolist(),
            "projection": self.projection.tolist(),
            "threshold": self.threshold,
            "target_false_alarm_rate": self.target_false_alarm_rate,
            "input_grid": self.input_grid.to_json(),
            "output_grid": self.output_grid.to_json(),
            "info": dict(self.info),
        }

    def to_bytes(self) -> bytes:
        """The reference file's content (compact UTF-8 JSON)."""
        return (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, content: bytes) -> InputReference:
        """Parse a reference file's content.

        Raises:
            ReferenceError: If it is not the JSON of a valid reference of a format this
                package reads.
        """
        try:
            data = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReferenceError(f"input reference is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReferenceError(f"not an input reference (format {FORMAT!r} expected)")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ReferenceError(
                f"input reference format_version {version!r} is newer than this package "
                f"reads ({FORMAT_VERSION}); upgrade mixai-inference"
            )
        try:
            return cls(
                input_names=tuple(str(name) for name in data["input_names"]),
                output_names=tuple(str(name) for name in data["output_names"]),
                center=np.asarray(data["center"], dtype=np.float64),
                projection=np.asarray(data["projection"], dtype=np.float64),
                threshold=float(data["threshold"]),
                target_false_alarm_rate=float(data["target_false_alarm_rate"]),
                input_grid=Grid.from_json(data["input_grid"]),
                output_grid=Grid.from_json(data["output_grid"]),
                info=dict(data.get("info") or {}),
            )
        except ReferenceError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceError(f"input reference: {type(exc).__name__}: {exc}") from None


class Scorer:
    """``ood_score`` on the hot path: ``‖x · W − b‖``, with ``W`` the projection over the
    threshold and ``b = center · W``: a float32 matrix-vector product, then the distance in
    float64 (``math.dist``), cheaper than two more numpy steps."""

    __slots__ = ("_offset", "_weights")

    def __init__(self, center: np.ndarray, weights: np.ndarray) -> None:
        self._weights = np.ascontiguousarray(weights.T, dtype=np.float32)  # (k, d): rows dotted
        self._offset: list[float] = (center @ weights).astype(np.float32).tolist()

    def score(self, row: np.ndarray) -> float:
        """``ood_score`` of one float32 row ``(1, d)``; NaN if the row is not finite."""
        return math.dist(self._weights.dot(row[0]).tolist(), self._offset)


class Guard(NamedTuple):
    """A model's guard: its :class:`Scorer` and the sketch grids of its inputs and outputs
    (:func:`format_sketch`)."""

    scorer: Scorer
    input_grid: Grid
    output_grid: Grid


def decode_sketch(sketch: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The input and output digits of a sketch (:func:`format_sketch`) as ``uint8`` arrays,
    or ``None`` if ``sketch`` is not one."""
    match = _SKETCH_RE.fullmatch(sketch)
    if match is None:
        return None
    inputs, outputs = (
        np.frombuffer(p.encode("ascii"), np.uint8) - ord("0") for p in match.groups()
    )
    return inputs, outputs


__all__ = [
    "DEFAULT_POLICY",
    "ENV_POLICY",
    "POLICIES",
    "SKETCH_BINS",
    "Grid",
    "Guard",
    "InputReference",
    "ReferenceError",
    "Scorer",
    "check_policy",
    "decode_sketch",
    "digit_strings",
    "env_policy",
    "format_sketch",
]
