"""The task registry: everything a task is, in one place (docs/data_contracts.md §3).

A task is a :class:`TaskSpec`: its kind (``regression``, ``classification`` or
``probability``), what its model outputs, how its label JSON reads, which features it
learns from, its feature flag, the metric it is judged on and its rule-based estimator.
Training, evaluation, export, serving and monitoring ask the registry; adding a task
means registering one more spec (:func:`register_task`).

Everything here is plain data and numpy-free callables, so that the slim runtime can
serve any registered task; the heavy counterparts (the network head and loss, the
scikit-learn baseline, the metrics) are looked up in ``mixai_ml`` by :attr:`TaskSpec.kind`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import le
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import numpy as np

    from mixai_inference.rules import Rules

Kind = Literal["regression", "classification", "probability"]
KINDS: Final = ("regression", "classification", "probability")

Source = Literal["mix", "alignment"]
"""The feature vector a task reads: the mix's ``FEATURE_NAMES`` or the (vocal,
instrumental) pair's ``ALIGNMENT_FEATURE_NAMES``."""

RuleEstimator = Callable[["Rules", "np.ndarray"], "np.ndarray"]
"""``(rules, rows (n, n_inputs)) -> (n, n_outputs)`` in the model's output space."""

MASTER_REG: Final = "master_reg"
PRESET_CLS: Final = "preset_cls"
ALIGN_CONF: Final = "align_conf"

MASTER_PARAM_RANGES: Final = MappingProxyType(
    {
        "target_lufs": (-20.0, -6.0),
        "eq_low_gain_db": (-6.0, 6.0),
        "eq_mid_gain_db": (-6.0, 6.0),
        "eq_high_gain_db": (-6.0, 6.0),
        "comp_threshold_db": (-30.0, 0.0),
        "comp_ratio": (1.0, 8.0),
        "limiter_ceiling_dbtp": (-3.0, 0.0),
        "stereo_width": (0.5, 1.5),
    }
)
"""Mastering parameters in contract order, each with its (low, high) range."""

MASTER_PARAM_NAMES: Final = tuple(MASTER_PARAM_RANGES)

PRESETS: Final = (
    "natural",
    "bright_pop",
    "warm_ballad",
    "punchy_rock",
    "loud_edm",
    "soft_acoustic",
)
"""Preset classes in contract order; model scores come in this order."""

ALIGN_TOLERANCE_MS: Final = 20.0
"""An alignment is right when the estimate is within this many milliseconds of the truth."""

MASTER_FLAG: Final = "enable_cpu_ml"
"""The switch every task's model needs on, besides the task's own flag."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task is.

    Args:
        name: The task's name (``labels.task``, ``model_registry.task``, namespaces).
        kind: ``regression`` (outputs in label units, clipped to ``ranges``),
            ``classification`` (a probability per class in ``outputs``) or
            ``probability`` (the chance that the label's boolean ``label_key`` is true).
        outputs: What each model output column means: the regression targets, the
            classes, or ``(label_key,)``.
        output_tensor: The ONNX graph's output name.
        flag: The feature flag that switches the task's model on (with ``enable_cpu_ml``).
        primary_metric: The metric the task is judged and promoted on.
        higher_is_better: Whether a larger ``primary_metric`` is better.
        rule: The rule-based estimator: production's fallback and training's baseline.
        source: The feature vector the task reads (``mix`` or ``alignment``).
        columns: A subset of the source's names the model reads; ``None``: all of them.
        ranges: ``regression``: the (low, high) range of each output.
        label_key: ``classification`` and ``probability``: the label's key.
        input_tensor: The ONNX graph's input name.
        trunk: Tasks naming the same trunk also train together as one multi-task network
            (a shared MLP over their common input, a head each), a candidate beside each
            one's own network; they must read the same features. ``None``: no sharing.
        personalized: Whether a per-user adapter, learned from the user's labelled jobs and
            shrunk toward the population, adjusts the model's answer for known users
            (``regression``: an offset per output; ``classification``: a log-prior ratio
            per class; see :mod:`mixai_inference.adapters`).
    """

    name: str
    kind: Kind
    outputs: tuple[str, ...]
    output_tensor: str
    flag: str
    primary_metric: str
    higher_is_better: bool
    rule: RuleEstimator
    source: Source = "mix"
    columns: tuple[str, ...] | None = None
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    label_key: str | None = None
    input_tensor: str = "features"
    trunk: str | None = None
    personalized: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.outputs:
            problems.append("needs at least one output")
        if self.source not in ("mix", "alignment"):
            problems.append(f"source must be 'mix' or 'alignment', got {self.source!r}")
        if self.kind == "regression" and tuple(self.ranges) != self.outputs:
            problems.append("a regression needs a (low, high) range for each output, in order")
        if self.kind != "regression" and not self.label_key:
            problems.append(f"a {self.kind} task needs its label_key")
        if self.kind == "probability" and self.outputs != (self.label_key,):
            problems.append("a probability task outputs (label_key,)")
        if self.personalized and self.kind == "probability":
            problems.append("per-user adapters exist for regression and classification only")
        if problems:
            raise ValueError(f"task {self.name!r}: " + "; ".join(problems))

    @property
    def targets(self) -> tuple[str, ...]:
        """The numeric target columns of a training row (label units, class index or 0/1)."""
        return self.outputs if self.kind == "regression" else (str(self.label_key),)

    def input_names(self, source_names: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The names the model reads, in order.

        Args:
            source_names: The names of the source vector; default: the package's
                ``FEATURE_NAMES`` or ``ALIGNMENT_FEATURE_NAMES``.
        """
        names = source_feature_names(self.source) if source_names is None else source_names
        return names if self.columns is None else self.columns

    def positions(self, source_names: tuple[str, ...]) -> list[int] | None:
        """Where the model's inputs are in the source vector; ``None``: all of it.

        Raises:
            ValueError: If the task reads names the source vector does not have.
        """
        if self.columns is None:
            return None
        missing = sorted(set(self.columns) - set(source_names))
        if missing:
            raise ValueError(f"{self.name} reads {missing}, not among the {self.source} features")
        return [source_names.index(name) for name in self.columns]

    @cached_property
    def lows(self) -> tuple[float, ...]:
        return tuple(low for low, _ in self.ranges.values())

    @cached_property
    def highs(self) -> tuple[float, ...]:
        return tuple(high for _, high in self.ranges.values())

    # --- labels ------------------------------------------------------------------------------

    def decode_label(self, label: Any) -> tuple[float, ...] | None:
        """The numeric targets of a label JSON object, or ``None`` if it breaks the contract.

        ``regression``: every output a number inside its range; ``classification``: the
        class's index in ``outputs``; ``probability``: the boolean as 0 or 1.
        """
        if not isinstance(label, Mapping):
            return None
        if self.kind == "regression":
            values = []
            for name, (low, high) in self.ranges.items():
                value = label.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return None
                if not low <= value <= high:
                    return None
                values.append(float(value))
            return tuple(values)
        value = label.get(self.label_key)
        if self.kind == "classification":
            return (float(self.outputs.index(value)),) if value in self.outputs else None
        return (float(value),) if isinstance(value, bool) else None

    # --- answers -----------------------------------------------------------------------------

    def finish(self, values: list[float]) -> list[float] | None:
        """A model's output row made usable, or ``None`` when it cannot be.

        ``regression``: clipped into the ranges; ``classification``: negative scores set
        to 0 and renormalised (``None`` when nothing is left); ``probability``: clamped
        to [0, 1]. Inputs are finite (the predictor checks).
        """
        if self.kind == "regression":
            lows, highs = self.lows, self.highs
            if all(map(le, lows, values)) and all(map(le, values, highs)):
                return values
            bounded = zip(values, lows, highs, strict=True)
            return [lo if v < lo else hi if v > hi else v for v, lo, hi in bounded]
        if self.kind == "classification":
            if min(values) < 0.0:
                values = [v if v > 0.0 else 0.0 for v in values]
            total = sum(values)
            if total <= 0.0:
                return None
            return [v / total for v in values] if abs(total - 1.0) > 1e-6 else values
        return [min(max(values[0], 0.0), 1.0)]

    def answer(self, values: Sequence[float]) -> Mapping[str, Any]:
        """The answer's JSON fields (``mixai-infer --json``, docs/data_contracts.md §8).

        ``regression``: each output by name; ``classification``: ``<label_key>`` (the
        most likely class) and ``<label_key>_scores``; ``probability``: ``confidence``.
        """
        if self.kind == "regression":
            return MappingProxyType(dict(zip(self.outputs, values, strict=True)))
        if self.kind == "classification":
            scores = MappingProxyType(dict(zip(self.outputs, values, strict=True)))
            best = self.outputs[values.index(max(values))]
            key = str(self.label_key)
            return MappingProxyType({key: best, f"{key}_scores": scores})
        return MappingProxyType({"confidence": values[0]})

    def prediction(self, answer: Mapping[str, Any]) -> Mapping[str, Any]:
        """The ``model_metrics.prediction`` of an :meth:`answer`: shaped like the label.

        ``classification`` records ``{"<label_key>": class, "scores": {...}}``; the other
        kinds record the answer as it is.
        """
        if self.kind != "classification":
            return answer
        key = str(self.label_key)
        return {key: answer[key], "scores": answer[f"{key}_scores"]}

    def decode_prediction(self, prediction: Any) -> tuple[float, ...] | None:
        """A served prediction (:meth:`prediction`) in the model's output space, or ``None``.

        ``classification`` gives the one-hot row of the predicted class.
        """
        if not isinstance(prediction, Mapping):
            return None
        try:
            if self.kind == "regression":
                return tuple(float(prediction[name]) for name in self.outputs)
            if self.kind == "classification":
                index = self.outputs.index(prediction[self.label_key])
                return tuple(float(k == index) for k in range(len(self.outputs)))
            return (float(prediction["confidence"]),)
        except (KeyError, TypeError, ValueError):
            return None


def source_feature_names(source: Source) -> tuple[str, ...]:
    """The package's feature names of a source vector (``mix`` or ``alignment``)."""
    if source == "alignment":
        from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES

        return ALIGNMENT_FEATURE_NAMES
    from mixai_inference.features import FEATURE_NAMES

    return FEATURE_NAMES


# --- the registry ---------------------------------------------------------------------------

_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry.

    Raises:
        ValueError: If a task of that name or with that flag is registered already.
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"task {spec.name!r} is registered already")
    if spec.flag in flag_names():
        raise ValueError(f"flag {spec.flag!r} belongs to another task")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Remove a task from the registry (e.g. a test's own task)."""
    del _REGISTRY[name]


def task_spec(name: str) -> TaskSpec:
    """The spec of a task.

    Raises:
        ValueError: If no task of that name is registered.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {list(_REGISTRY)}") from None


def task_specs() -> tuple[TaskSpec, ...]:
    """Every registered task, in registration order."""
    return tuple(_REGISTRY.values())


def task_names(source: Source | None = None) -> tuple[str, ...]:
    """The names of the registered tasks, in registration order.

    Args:
        source: Only the tasks reading this feature vector (``mix``: one answer of
            ``Predictor.predict`` covers them); ``None``: every task.
    """
    return tuple(name for name, spec in _REGISTRY.items() if source in (None, spec.source))


def trunks() -> dict[str, tuple[str, ...]]:
    """Each shared trunk and the tasks it serves (:attr:`TaskSpec.trunk`), in registration
    order; a trunk of one task trains nothing a single-task network does not."""
    members: dict[str, list[str]] = {}
    for spec in _REGISTRY.values():
        if spec.trunk is not None:
            members.setdefault(spec.trunk, []).append(spec.name)
    return {trunk: tuple(tasks) for trunk, tasks in members.items() if len(tasks) > 1}


def flag_names() -> tuple[str, ...]:
    """``enable_cpu_ml``, then each task's flag (docs/data_contracts.md §1)."""
    return (MASTER_FLAG, *(spec.flag for spec in _REGISTRY.values()))


# --- the three tasks of MIXAI ---------------------------------------------------------------


def _master_rule(rules: Rules, rows: np.ndarray) -> np.ndarray:
    return rules.master_params(rows)


def _preset_rule(rules: Rules, rows: np.ndarray) -> np.ndarray:
    return rules.preset_scores(rows)


def _align_rule(rules: Rules, rows: np.ndarray) -> np.ndarray:
    return rules.align_confidence(rows).reshape(-1, 1)


register_task(
    TaskSpec(
        name=MASTER_REG,
        kind="regression",
        outputs=MASTER_PARAM_NAMES,
        output_tensor="params",
        flag="enable_master_regression",
        primary_metric="mae_norm",
        higher_is_better=False,
        rule=_master_rule,
        ranges=MASTER_PARAM_RANGES,
        trunk="mix",
        personalized=True,
    )
)
register_task(
    TaskSpec(
        name=PRESET_CLS,
        kind="classification",
        outputs=PRESETS,
        output_tensor="probabilities",
        flag="enable_preset_recommendation",
        primary_metric="macro_f1",
        higher_is_better=True,
        rule=_preset_rule,
        label_key="preset",
        trunk="mix",
        personalized=True,
    )
)
register_task(
    TaskSpec(
        name=ALIGN_CONF,
        kind="probability",
        outputs=("aligned_ok",),
        output_tensor="probability",
        flag="enable_align_confidence",
        primary_metric="roc_auc",
        higher_is_better=True,
        rule=_align_rule,
        source="alignment",
        label_key="aligned_ok",
    )
)

__all__ = [
    "ALIGN_CONF",
    "ALIGN_TOLERANCE_MS",
    "KINDS",
    "MASTER_FLAG",
    "MASTER_PARAM_NAMES",
    "MASTER_PARAM_RANGES",
    "MASTER_REG",
    "PRESETS",
    "PRESET_CLS",
    "Kind",
    "RuleEstimator",
    "Source",
    "TaskSpec",
    "flag_names",
    "register_task",
    "source_feature_names",
    "task_names",
    "task_spec",
    "task_specs",
    "trunks",
    "unregister_task",
]
