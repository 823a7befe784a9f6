"""What the predictor answers: each task's answer with its provenance, and the reason codes.

Every answer says where it came from (:class:`Provenance`): ``source`` (``ml`` or
``rules``), the model version and A/B variant it was routed to, and, when the rules
answered, the reason (a key of :data:`REASONS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import numpy as np

from mixai_inference.metrics import MetricRecord
from mixai_inference.ood import Grid, format_sketch
from mixai_inference.tasks import ALIGN_CONF, MASTER_REG, PRESET_CLS, TaskSpec

_DELIBERATE: Final = {  # the rules answer by configuration: recorded with ok=true
    "disabled": "the task's flag (or enable_cpu_ml) is off",
    "no_bundle": "the predictor was made without a bundle (Predictor.rules_only)",
    "no_model": "the bundle has no active model for the task",
    "rollout": "the user is outside the active version's rollout_pct",
    "variant_rules": "the user's experiment variant is answered by the rules",
    "out_of_distribution": "the input is unlike the model's training inputs (policy fallback)",
}
_FAILURES: Final = {  # something went wrong: recorded with ok=false
    "bundle_unavailable": "the bundle's manifest is missing, unreadable or invalid",
    "invalid_features": "the input features contain NaN or infinity",
    "file_missing": "the model file named by the manifest does not exist",
    "not_in_bundle": "the run-time control routes to a version the bundle does not ship",
    "sha256_mismatch": "the model file's SHA-256 differs from the manifest (tampered/corrupt)",
    "schema_mismatch": "the model's feature schema or input width differs from the package's",
    "metadata_mismatch": "the ONNX metadata_props task/version differ from the manifest",
    "io_mismatch": "the ONNX graph's input/output names or widths break the model contract",
    "load_error": "onnxruntime could not load or warm up the model",
    "runtime_error": "onnxruntime raised while running the model",
    "bad_output": "the model's output is not a usable distribution",
    "non_finite_output": "the model returned NaN or infinity",
}
REASONS: Final = MappingProxyType({**_DELIBERATE, **_FAILURES})
"""Every fallback reason code and what it means."""

FAILURE_REASONS: Final = frozenset(_FAILURES)
"""Reasons that mean something failed; their metrics rows have ``ok=false``."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one task's answer came from."""

    source: str
    """``ml`` or ``rules``."""
    model_version: str | None
    """The version the call was routed to (also when its failure made the rules answer)."""
    variant: str | None
    """The A/B variant, when the user is in one of the task's experiments."""
    experiment_id: str | None
    reason: str | None
    """Why the rules answered (a key of :data:`REASONS`); ``None`` for model answers."""
    personalized: bool = False
    """Whether the user's adapter adjusted the model's answer (:mod:`mixai_inference.adapters`)."""

    def fallback(self, reason: str) -> Provenance:
        """The same routing, answered by the rules for ``reason``."""
        return Provenance("rules", self.model_version, self.variant, self.experiment_id, reason)

    def with_adapter(self) -> Provenance:
        """The same model answer, adjusted by the user's adapter."""
        return replace(self, personalized=True)

    def to_dict(self) -> dict[str, str | bool | None]:
        return {
            "source": self.source,
            "model_version": self.model_version,
            "variant": self.variant,
            "experiment_id": self.experiment_id,
            "reason": self.reason,
            "personalized": self.personalized,
        }


class Answer(NamedTuple):
    """One task's answer: its output values and where they came from.

    A named tuple: the hot path makes one per task and call, and the JSON fields are
    made only when read.
    """

    spec: TaskSpec
    values: Sequence[float]
    """The usable output row (:meth:`TaskSpec.finish <mixai_inference.tasks.TaskSpec.finish>`,
    or the rule's); read-only."""
    provenance: Provenance
    ood_score: float | None = None
    """The input's distance from the model's training inputs over the threshold
    (:mod:`mixai_inference.ood`); ``None`` when not scored (policy ``off``, no reference,
    invalid input)."""

    @property
    def ood(self) -> bool:
        """Whether the input is out of distribution (``ood_score`` above 1)."""
        return self.ood_score is not None and self.ood_score > 1.0

    @property
    def fields(self) -> Mapping[str, Any]:
        """The answer's JSON fields (:meth:`TaskSpec.answer
        <mixai_inference.tasks.TaskSpec.answer>`)."""
        return self.spec.answer(self.values)


def _merged(answers: Mapping[str, Answer]) -> dict[str, Any]:
    """Every answer's fields, then each task's provenance under the task's name."""
    merged: dict[str, Any] = {}
    for answer in answers.values():
        merged.update(
            (key, dict(value) if isinstance(value, Mapping) else value)
            for key, value in answer.fields.items()
        )
    for task, answer in answers.items():
        merged[task] = {
            **answer.provenance.to_dict(),
            "ood_score": answer.ood_score,
            "ood": answer.ood,
        }
    return merged


class Prediction(NamedTuple):
    """The answer of :meth:`Predictor.predict <mixai_inference.Predictor.predict>`: one
    :class:`Answer` per task that reads the mix's features."""

    answers: Mapping[str, Answer]

    @property
    def params(self) -> Mapping[str, float]:
        """The 8 mastering parameters (docs/data_contracts.md §3), in contract order."""
        return self.answers[MASTER_REG].fields

    @property
    def preset(self) -> str:
        return str(self.answers[PRESET_CLS].fields["preset"])

    @property
    def preset_scores(self) -> Mapping[str, float]:
        """Probability of each preset (``PRESETS`` order), summing to 1."""
        scores: Mapping[str, float] = self.answers[PRESET_CLS].fields["preset_scores"]
        return scores

    @property
    def master_reg(self) -> Provenance:
        return self.answers[MASTER_REG].provenance

    @property
    def preset_cls(self) -> Provenance:
        return self.answers[PRESET_CLS].provenance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the parameters under their names, ``preset``, ``preset_scores``,
        and under each task's name its provenance, ``ood_score`` and ``ood``
        (docs/data_contracts.md §8)."""
        return _merged(self.answers)


class AlignResult(NamedTuple):
    """The answer of :meth:`Predictor.align <mixai_inference.Predictor.align>`."""

    offset_ms: float
    """How much later the vocal starts than the instrumental (rule-based aligner)."""
    answers: Mapping[str, Answer]
    """One :class:`Answer` per task that reads the alignment features."""

    @property
    def confidence(self) -> float:
        """Probability that ``offset_ms`` is right within ``ALIGN_TOLERANCE_MS``."""
        return float(self.answers[ALIGN_CONF].fields["confidence"])

    @property
    def align_conf(self) -> Provenance:
        return self.answers[ALIGN_CONF].provenance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``offset_ms``, ``confidence`` and the ``align_conf`` provenance."""
        return {"offset_ms": self.offset_ms, **_merged(self.answers)}


def answer_records(payloads: Sequence[tuple[Any, ...]]) -> list[MetricRecord]:
    """The ``model_metrics`` rows of predictor calls: one per task answered, in call order.

    Each payload: ``(time, user_id, job_id, request_id, served, answers, seconds, extra, row,
    routes)``; ``served`` the tasks in order (each with its ``spec``, ``position`` and
    ``columns``), ``seconds`` what each took, ``extra`` fields added to every prediction (e.g.
    the alignment's ``offset_ms``), ``row`` the input, ``routes`` each task's route (with its
    ``guard``, whose grids sketch the scored inputs and outputs). The sketches of all the
    calls are computed together, one comparison per grid.
    """
    digits = _Digits()
    rows = []  # each record's fields but the sketch, and where its digits will be if scored
    for payload in payloads:
        now, user_id, job_id, request_id, served, answers, seconds, extra, row, routes = payload
        for task, elapsed in zip(served, seconds, strict=True):
            spec = task.spec
            answer = answers[spec.name]
            prov = answer.provenance
            places = None
            if answer.ood_score is not None:
                guard = routes[task.position].guard
                inputs = row if task.columns is None else row[:, task.columns]
                places = (
                    digits.add(guard.input_grid, inputs),
                    digits.add(guard.output_grid, answer.values) if prov.source == "ml" else None,
                )
            fields = (
                now,
                spec.name,
                prov.model_version,
                prov.variant,
                prov.source,
                elapsed * 1000.0,
                prov.reason not in FAILURE_REASONS,
                prov.reason,
                user_id,
                job_id,
                {**extra, **spec.prediction(answer.fields)}
                if extra
                else spec.prediction(answer.fields),
                request_id,
                prov.experiment_id,
                answer.ood_score,
                None if answer.ood_score is None else answer.ood,
            )
            rows.append((fields, places))
    text = digits.compute()
    return [
        MetricRecord(
            *fields,
            None
            if places is None
            else format_sketch(text(places[0]), None if places[1] is None else text(places[1])),
        )
        for fields, places in rows
    ]


class _Digits:
    """Rows to sketch, gathered per grid so that each grid compares all its rows at once."""

    def __init__(self) -> None:
        self._rows: dict[bytes, tuple[Grid, list[Any]]] = {}

    def add(self, grid: Grid, values: Any) -> tuple[bytes, int]:
        """Where ``values``' digits will be."""
        _, rows = self._rows.setdefault(grid.fingerprint, (grid, []))
        rows.append(values)
        return grid.fingerprint, len(rows) - 1

    def compute(self) -> Callable[[tuple[bytes, int]], str]:
        """Sketch every row; the digits of a place :meth:`add` gave."""
        done = {
            key: grid.digits(np.reshape(np.asarray(rows, dtype=np.float32), (len(rows), -1)))
            for key, (grid, rows) in self._rows.items()
        }
        return lambda place: done[place[0]][place[1]]
