"""The A/B analysis configuration (``conf/base/parameters_ab_analysis.yml``), validated.

:meth:`AbSettings.from_params` turns the ``ab_analysis`` parameters into typed settings and
fails early, with the offending key in the message, on anything it cannot use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from mixai_ml.ab.stats import Correction

MetricKind = Literal["mean", "proportion"]
Role = Literal["primary", "secondary", "guardrail"]
MarginType = Literal["absolute", "relative"]
DecisionBasis = Literal["sequential", "fixed"]

CONTROL = "control"
"""The variant every other variant is compared with (docs/data_contracts.md §2)."""
PRE_SUFFIX = "__pre"
"""``<metric>__pre`` is the pre-exposure covariate of ``<metric>`` (used by CUPED)."""


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ValueError(f"ab_analysis.{key} must be one of {allowed}, got {value!r}")
    return str(value)


def _fraction(value: Any, key: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"ab_analysis.{key} must be in (0, 1), got {value!r}")
    return number


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is analysed."""

    name: str
    kind: MetricKind
    role: Role
    higher_is_better: bool
    mde: float
    """Target effect for power and sample size, relative to the control mean (0.05 = 5 %)."""
    margin: float | None = None
    """Non-inferiority margin of a guardrail (``None``: no non-inferiority test)."""
    margin_type: MarginType = "relative"

    @property
    def tested(self) -> bool:
        """Primary and secondary metrics enter the multiple-testing correction."""
        return self.role != "guardrail"

    def absolute_margin(self, control_mean: float) -> float | None:
        """The margin in metric units (a relative margin scales ``|control mean|``)."""
        if self.margin is None:
            return None
        return self.margin * abs(control_mean) if self.margin_type == "relative" else self.margin


@dataclass(frozen=True)
class ExperimentSettings:
    """Per-experiment overrides."""

    weights: Mapping[str, float] | None = None
    tuning_n_per_variant: float | None = None


@dataclass(frozen=True)
class AbSettings:
    """Everything the analysis needs besides the data."""

    alpha: float = 0.05
    correction: Correction = "holm"
    srm_alpha: float = 0.001
    cuped: bool = True
    target_power: float = 0.8
    default_mde: float = 0.05
    tuning_n_per_variant: float = 10_000.0
    min_n_per_variant: float = 100.0
    decision_basis: DecisionBasis = "sequential"
    metrics: Mapping[str, MetricSpec] = field(default_factory=dict)
    unknown_role: Role = "secondary"
    unknown_higher_is_better: bool = True
    experiments: Mapping[str, ExperimentSettings] = field(default_factory=dict)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        experiment_weights: Mapping[str, Mapping[str, float]] | None = None,
    ) -> AbSettings:
        """Settings from the ``ab_analysis`` parameters (see the YAML file for every key).

        Args:
            params: The ``ab_analysis`` parameters.
            experiment_weights: Each experiment's weights, from ``ab_experiments``
                (:func:`weights_from_table`): the one definition of an experiment.
        """
        power = params.get("power", {}) or {}
        sequential = params.get("sequential", {}) or {}
        unknown = params.get("unknown_metrics", {}) or {}
        default_mde = float(power.get("mde", 0.05))
        metrics = {
            str(name): _metric_spec(str(name), spec or {}, default_mde)
            for name, spec in (params.get("metrics", {}) or {}).items()
        }
        overrides = {str(k): v or {} for k, v in (params.get("experiments", {}) or {}).items()}
        misplaced = sorted(name for name, spec in overrides.items() if "weights" in spec)
        if misplaced:
            raise ValueError(
                f"ab_analysis.experiments {misplaced}: weights are defined in the ab_experiments "
                "table (the one definition of an experiment), not in the parameters"
            )
        weights = dict(experiment_weights or {})
        experiments = {
            name: ExperimentSettings(
                weights=_weights(weights.get(name), f"ab_experiments {name}: weights"),
                tuning_n_per_variant=(
                    float(overrides[name]["tuning_n_per_variant"])
                    if overrides.get(name, {}).get("tuning_n_per_variant") is not None
                    else None
                ),
            )
            for name in sorted(set(overrides) | set(weights))
        }
        return cls(
            alpha=_fraction(params.get("alpha", 0.05), "alpha"),
            correction=cast(
                Correction, _choice(params.get("correction", "holm"), ("holm", "bh"), "correction")
            ),
            srm_alpha=_fraction(params.get("srm_alpha", 0.001), "srm_alpha"),
            cuped=bool(params.get("cuped", True)),
            target_power=_fraction(power.get("target_power", 0.8), "power.target_power"),
            default_mde=default_mde,
            tuning_n_per_variant=float(sequential.get("tuning_n_per_variant", 10_000)),
            min_n_per_variant=float(sequential.get("min_n_per_variant", 100)),
            decision_basis=cast(
                DecisionBasis,
                _choice(
                    params.get("decision_basis", "sequential"),
                    ("sequential", "fixed"),
                    "decision_basis",
                ),
            ),
            metrics=metrics,
            unknown_role=cast(
                Role,
                _choice(
                    unknown.get("role", "secondary"),
                    ("primary", "secondary", "guardrail"),
                    "unknown_metrics.role",
                ),
            ),
            unknown_higher_is_better=bool(unknown.get("higher_is_better", True)),
            experiments=experiments,
        )

    def metric_spec(self, name: str, all_binary: bool) -> MetricSpec:
        """The configured spec, or a default one: a proportion when every value is 0/1."""
        if name in self.metrics:
            return self.metrics[name]
        return MetricSpec(
            name=name,
            kind="proportion" if all_binary else "mean",
            role=self.unknown_role,
            higher_is_better=self.unknown_higher_is_better,
            mde=self.default_mde,
        )

    def weights(self, experiment_id: str, variants: list[str]) -> dict[str, float]:
        """Configured weights of an experiment, else an even split over ``variants``."""
        configured = self.experiments.get(experiment_id, ExperimentSettings()).weights
        if configured is not None:
            return dict(configured)
        return dict.fromkeys(variants, 1.0)

    def tuning_n(self, experiment_id: str) -> float:
        """Users per variant at which the confidence sequence of the experiment is tightest."""
        override = self.experiments.get(experiment_id, ExperimentSettings()).tuning_n_per_variant
        return self.tuning_n_per_variant if override is None else override


def _weights(raw: Any, key: str) -> dict[str, float] | None:
    if raw is None:
        return None
    weights = {str(name): float(value) for name, value in dict(raw).items()}
    if any(value < 0 for value in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"{key} must be non-negative and not all zero, got {raw!r}")
    return weights


def weights_from_table(experiments: Any) -> dict[str, dict[str, float]]:
    """Experiment id → weights, from the ``ab_experiments`` table (a DataFrame; JSON text).

    An experiment with assignments but no row here is analysed with equal expected weights.
    """
    return {
        str(row.experiment_id): {str(k): float(v) for k, v in json.loads(row.weights).items()}
        for row in experiments.itertuples()
    }


def _metric_spec(name: str, raw: Mapping[str, Any], default_mde: float) -> MetricSpec:
    key = f"metrics.{name}"
    margin = raw.get("noninferiority_margin")
    if margin is not None and float(margin) < 0:
        raise ValueError(f"ab_analysis.{key}.noninferiority_margin must be >= 0, got {margin!r}")
    return MetricSpec(
        name=name,
        kind=cast(
            MetricKind, _choice(raw.get("type", "mean"), ("mean", "proportion"), f"{key}.type")
        ),
        role=cast(
            Role,
            _choice(
                raw.get("role", "secondary"), ("primary", "secondary", "guardrail"), f"{key}.role"
            ),
        ),
        higher_is_better=bool(raw.get("higher_is_better", True)),
        mde=float(raw.get("mde", default_mde)),
        margin=None if margin is None else float(margin),
        margin_type=cast(
            MarginType,
            _choice(
                raw.get("margin_type", "relative"), ("absolute", "relative"), f"{key}.margin_type"
            ),
        ),
    )
