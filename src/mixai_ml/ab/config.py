"""The A/B analysis configuration (``conf/base/parameters_ab_analysis.yml``), validated.

:meth:`AbSettings.from_params` turns the ``ab_analysis`` parameters into typed settings and
fails early, with the offending key in the message, on anything it cannot use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal, cast

from mixai_ml.ab.multiplicity import CORRECTIONS, Correction
from mixai_ml.parameters import settings_section

MetricKind = Literal["mean", "proportion", "ratio", "quantile"]
METRIC_KINDS: tuple[MetricKind, ...] = ("mean", "proportion", "ratio", "quantile")
Role = Literal["primary", "secondary", "guardrail"]
ROLES: tuple[Role, ...] = ("primary", "secondary", "guardrail")
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


def _positive(value: Any, key: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"ab_analysis.{key} must be positive, got {value!r}")
    return number


@dataclass(frozen=True)
class CapSpec:
    """Winsorisation of a mean metric's per-user values: ``min(y, cap)``, before any statistic.

    Exactly one of ``absolute`` (a cap in metric units) and ``pre_period_quantile`` (the cap is
    that quantile of the pooled pre-period values ``<metric>__pre`` of the experiment's users,
    fixed at the first refresh that sees them) is set.
    """

    absolute: float | None = None
    pre_period_quantile: float | None = None


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is analysed."""

    name: str
    kind: MetricKind
    role: Role
    higher_is_better: bool
    mde: float
    """Target effect for power and sample size, relative to the control value (0.05 = 5 %)."""
    margin: float | None = None
    """Non-inferiority margin of a guardrail (``None``: no non-inferiority test)."""
    margin_type: MarginType = "relative"
    source: str = ""
    """The metric whose rows are analysed (``ab_test_metrics.metric``); default: ``name``."""
    quantile: float | None = None
    """The quantile of a ``quantile`` metric (0.95 = p95)."""
    cap: CapSpec | None = None

    @property
    def rows(self) -> str:
        """The ``ab_test_metrics.metric`` this metric reads."""
        return self.source or self.name

    @property
    def tested(self) -> bool:
        """Primary and secondary metrics enter the multiple-testing correction."""
        return self.role != "guardrail"

    @property
    def statistic(self) -> str:
        """What is compared: ``mean``, ``proportion``, ``ratio`` or ``p95`` …"""
        if self.kind == "quantile":
            return f"p{100 * float(self.quantile or 0):g}"
        return self.kind

    def absolute_margin(self, control_value: float) -> float | None:
        """The margin in metric units (a relative margin scales ``|control value|``)."""
        if self.margin is None:
            return None
        return self.margin * abs(control_value) if self.margin_type == "relative" else self.margin


@dataclass(frozen=True)
class ExperimentSettings:
    """Per-experiment overrides (the expected split is ``ab_experiments``' alone)."""

    tuning_n_per_variant: float | None = None


@dataclass(frozen=True)
class StatisticsSettings:
    """How the sufficient statistics are kept in the database (:mod:`mixai_ml.ab.store`)."""

    lookback_days: int = 0
    """Days before today that stay open for late rows; older days are folded into the tables."""
    late_check_days: int = 3
    """Folded days whose row counts are checked at every run: rows that arrived late trigger a
    rebuild instead of being missed."""
    histogram_bin_width: float = 0.01
    """Relative bin width of the quantile histograms (quantiles resolved to ~1/100 of it)."""
    rebuild: bool = False
    """Recompute every table from the raw rows (e.g. after late rows older than the lookback)."""
    processes: int = 2
    """SQLite: worker processes of a full rebuild, each summing a share of the experiments
    (1: none). Each needs about 250 MB at platform scale; more than the CPUs do not help."""
    processes_from_users: int = 200_000
    """SQLite: the assigned users from which a rebuild starts worker processes (each costs
    about a second to start)."""


@dataclass(frozen=True)
class AbSettings:
    """Everything the analysis needs besides the data."""

    alpha: float = 0.05
    correction: Correction = "holm"
    srm_alpha: float = 0.001
    srm_concentration: float = 10_000.0
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
    statistics: StatisticsSettings = field(default_factory=StatisticsSettings)
    max_detailed: int = 10
    """Experiments the report shows in full (the most urgent first); the rest get one line."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AbSettings:
        """Settings from the ``ab_analysis`` parameters (see the YAML file for every key).

        Raises:
            ValueError: A value out of range, or a key the analysis does not know (a typo
                would leave the default in force unnoticed).
        """
        params = _checked(params, "", "")
        power = _section(params, "power")
        sequential = _section(params, "sequential")
        unknown = _section(params, "unknown_metrics")
        srm = _section(params, "srm")
        report = _section(params, "report")
        stored = _section(params, "statistics")
        default_mde = float(power.get("mde", cls.default_mde))
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
        for name, spec in overrides.items():
            _checked(spec, "experiment", f"experiments.{name}")
        _check_caps(metrics.values())
        experiments = {
            name: ExperimentSettings(
                tuning_n_per_variant=(
                    float(spec["tuning_n_per_variant"])
                    if spec.get("tuning_n_per_variant") is not None
                    else None
                ),
            )
            for name, spec in sorted(overrides.items())
        }
        minimums = {"lookback_days": 0, "late_check_days": 0, "processes": 1}
        counts = {
            key: int(stored.get(key, getattr(StatisticsSettings, key)))
            for key in (*minimums, "processes_from_users")
        }
        if low := sorted(key for key, value in counts.items() if value < minimums.get(key, 0)):
            raise ValueError(
                "ab_analysis.statistics: "
                + ", ".join(
                    f"{key} must be >= {minimums.get(key, 0)}, got {counts[key]}" for key in low
                )
            )
        return cls(
            alpha=_fraction(params.get("alpha", cls.alpha), "alpha"),
            correction=cast(
                Correction,
                _choice(params.get("correction", cls.correction), CORRECTIONS, "correction"),
            ),
            srm_alpha=_fraction(srm.get("alpha", cls.srm_alpha), "srm.alpha"),
            srm_concentration=_positive(
                srm.get("sequential_concentration", cls.srm_concentration),
                "srm.sequential_concentration",
            ),
            cuped=bool(params.get("cuped", cls.cuped)),
            target_power=_fraction(
                power.get("target_power", cls.target_power), "power.target_power"
            ),
            default_mde=default_mde,
            tuning_n_per_variant=float(
                sequential.get("tuning_n_per_variant", cls.tuning_n_per_variant)
            ),
            min_n_per_variant=float(sequential.get("min_n_per_variant", cls.min_n_per_variant)),
            decision_basis=cast(
                DecisionBasis,
                _choice(
                    params.get("decision_basis", cls.decision_basis),
                    ("sequential", "fixed"),
                    "decision_basis",
                ),
            ),
            metrics=metrics,
            unknown_role=cast(
                Role, _choice(unknown.get("role", cls.unknown_role), ROLES, "unknown_metrics.role")
            ),
            unknown_higher_is_better=bool(
                unknown.get("higher_is_better", cls.unknown_higher_is_better)
            ),
            experiments=experiments,
            statistics=StatisticsSettings(
                **counts,
                histogram_bin_width=_fraction(
                    stored.get("histogram_bin_width", StatisticsSettings.histogram_bin_width),
                    "statistics.histogram_bin_width",
                ),
                rebuild=bool(stored.get("rebuild", StatisticsSettings.rebuild)),
            ),
            max_detailed=int(
                _positive(report.get("max_detailed", cls.max_detailed), "report.max_detailed")
            ),
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

    def tuning_n(self, experiment_id: str) -> float:
        """Users per variant at which the confidence sequence of the experiment is tightest."""
        override = self.experiments.get(experiment_id, ExperimentSettings()).tuning_n_per_variant
        return self.tuning_n_per_variant if override is None else override

    @property
    def quantile_sources(self) -> tuple[str, ...]:
        """Metrics whose rows are kept as histograms (the sources of quantile metrics)."""
        return tuple(sorted({s.rows for s in self.metrics.values() if s.kind == "quantile"}))

    @property
    def caps(self) -> dict[str, CapSpec]:
        """Cap of each capped source metric."""
        return {s.rows: s.cap for s in self.metrics.values() if s.cap is not None}

    @property
    def pre_period_quantiles(self) -> dict[str, float]:
        """The quantile of each source metric capped at a pre-period quantile, by name."""
        return {
            name: cap.pre_period_quantile
            for name, cap in sorted(self.caps.items())
            if cap.pre_period_quantile is not None
        }

    def statistics_definition(self) -> str:
        """What shapes the stored sums (a change means a rebuild), as canonical JSON."""
        return json.dumps(
            {
                "histogram_bin_width": self.statistics.histogram_bin_width,
                "quantile_sources": list(self.quantile_sources),
                "caps": {name: asdict(cap) for name, cap in sorted(self.caps.items())},
            },
            sort_keys=True,
        )


def _cap_spec(raw: Any, key: str, kind: MetricKind) -> CapSpec | None:
    if raw is None:
        return None
    if kind != "mean":
        raise ValueError(
            f"ab_analysis.{key}: only `mean` metrics are capped (this one is {kind!r}); "
            "a quantile is robust to outliers already"
        )
    raw = dict(raw)
    unknown = set(raw) - {"absolute", "pre_period_quantile"}
    if unknown or len(raw) != 1:
        raise ValueError(
            f"ab_analysis.{key} needs exactly one of `absolute` or `pre_period_quantile`, "
            f"got {sorted(raw)}"
        )
    if "absolute" in raw:
        return CapSpec(absolute=float(raw["absolute"]))
    return CapSpec(pre_period_quantile=_fraction(raw["pre_period_quantile"], key))


def _check_caps(specs: Any) -> None:
    """Mean metrics reading the same rows must be capped alike (the stored sums are capped)."""
    seen: dict[str, CapSpec | None] = {}
    for spec in specs:
        if spec.kind != "mean":
            continue
        if spec.rows in seen and seen[spec.rows] != spec.cap:
            raise ValueError(
                f"ab_analysis.metrics: mean metrics reading `{spec.rows}` disagree on `cap`"
            )
        seen[spec.rows] = spec.cap


_KEYS: Final[dict[str, set[str]]] = {
    "": {
        "alpha",
        "correction",
        "cuped",
        "decision_basis",
        "srm",
        "power",
        "sequential",
        "statistics",
        "report",
        "metrics",
        "unknown_metrics",
        "experiments",
    },
    "srm": {"alpha", "sequential_concentration"},
    "power": {"target_power", "mde"},
    "sequential": {"tuning_n_per_variant", "min_n_per_variant"},
    "statistics": {f.name for f in fields(StatisticsSettings)},
    "report": {"max_detailed"},
    "unknown_metrics": {"role", "higher_is_better"},
    "experiment": {"tuning_n_per_variant"},
    "metric": {
        "type",
        "role",
        "higher_is_better",
        "mde",
        "noninferiority_margin",
        "margin_type",
        "source",
        "quantile",
        "cap",
    },
}
"""The keys of each section of the ``ab_analysis`` parameters (``""``: the top level;
``experiment`` and ``metric``: an entry of ``experiments`` or ``metrics``)."""


def _checked(raw: Any, kind: str, where: str) -> Mapping[str, Any]:
    """``raw`` (at ``ab_analysis.<where>``, empty when absent) with the keys of ``kind`` checked."""
    return settings_section(raw, f"ab_analysis.{where}".rstrip("."), optional=_KEYS[kind])


def _section(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A section of the parameters (empty when absent), its keys checked."""
    return _checked(params.get(name), name, name)


def _metric_spec(name: str, raw: Mapping[str, Any], default_mde: float) -> MetricSpec:
    key = f"metrics.{name}"
    _checked(raw, "metric", key)
    margin = raw.get("noninferiority_margin")
    if margin is not None and float(margin) < 0:
        raise ValueError(f"ab_analysis.{key}.noninferiority_margin must be >= 0, got {margin!r}")
    kind = cast(MetricKind, _choice(raw.get("type", "mean"), METRIC_KINDS, f"{key}.type"))
    quantile = raw.get("quantile")
    if kind == "quantile":
        quantile = _fraction(quantile if quantile is not None else 0.5, f"{key}.quantile")
    elif quantile is not None:
        raise ValueError(f"ab_analysis.{key}.quantile is only for `type: quantile`")
    source = str(raw.get("source") or name)
    if source.endswith(PRE_SUFFIX):
        raise ValueError(f"ab_analysis.{key}.source: `{source}` is a covariate, not a metric")
    return MetricSpec(
        name=name,
        kind=kind,
        role=cast(Role, _choice(raw.get("role", "secondary"), ROLES, f"{key}.role")),
        higher_is_better=bool(raw.get("higher_is_better", True)),
        mde=float(raw.get("mde", default_mde)),
        margin=None if margin is None else float(margin),
        margin_type=cast(
            MarginType,
            _choice(
                raw.get("margin_type", MetricSpec.margin_type),
                ("absolute", "relative"),
                f"{key}.margin_type",
            ),
        ),
        source="" if source == name else source,
        quantile=None if quantile is None else float(quantile),
        cap=_cap_spec(raw.get("cap"), f"{key}.cap", kind),
    )
