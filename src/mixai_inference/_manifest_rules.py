"""The cross-field rules of a bundle manifest (:mod:`mixai_inference.bundle`).

The type checks that parsing applies to each value (:func:`expect`), and the rules that only
the whole manifest shows:
known tasks and flags, one active version per task, plain unique file names, experiments
over shipped versions, edge graphs beside the models.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mixai_inference.ood import POLICIES
from mixai_inference.tasks import flag_names, task_names, task_spec

if TYPE_CHECKING:
    from mixai_inference.bundle import EdgeGraph, Experiment, Manifest, ModelEntry

MANIFEST_NAME: Final = "manifest.json"
MODEL_STATUSES: Final = ("candidate", "active", "shadow", "retired")

NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle or manifest that cannot be read or does not follow the format."""


def expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``value``, if it is one of ``kind`` (a JSON ``true`` is no number).

    Raises:
        BundleError: Naming ``what`` and the value otherwise.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python but not a number (or a string) in a manifest
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BundleError(f"{what}: expected {names}, got {value!r}")
    return value


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (not ``true``) that is finite as a float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float64
        return False


def finite_number(value: Any, what: str) -> float:
    expect(value, (int, float), what)
    if not is_finite_number(value):
        raise BundleError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def optional_str(value: Any, what: str) -> str | None:
    return None if value is None else expect(value, str, what)


def validate(manifest: Manifest) -> None:
    """Check the cross-field rules of a manifest.

    Raises:
        BundleError: Naming every broken rule of the first offending entry.
    """
    if not manifest.feature_schema_version:
        raise BundleError("feature_schema_version is empty")
    known_flags = flag_names()
    unknown_flags = sorted(set(manifest.flags) - set(known_flags))
    if unknown_flags:
        raise BundleError(f"unknown flags {unknown_flags}; known: {list(known_flags)}")
    for name, value in manifest.flags.items():
        if not isinstance(value, bool):
            raise BundleError(f"flags.{name}: expected true or false, got {value!r}")
    files: set[str] = set()
    for task, entry in manifest.tasks.items():
        if task not in task_names():
            raise BundleError(f"unknown task {task!r}; expected one of {list(task_names())}")
        if entry.ood_policy is not None and entry.ood_policy not in POLICIES:
            raise BundleError(f"tasks.{task}.ood_policy must be one of {list(POLICIES)} or null")
        for version, model in entry.models.items():
            _validate_model(task, version, model)
            for name in model.files:  # the model and its training reference
                _claim(files, name)
        actives = sorted(v for v, m in entry.models.items() if m.status == "active")
        expected = [] if entry.active_version is None else [entry.active_version]
        if actives != expected:
            raise BundleError(
                f"tasks.{task}: active_version is {entry.active_version!r} but the models with "
                f"status 'active' are {actives}; exactly the active version has that status"
            )
    for name, graph in manifest.edge.items():
        _validate_edge(name, graph)
        _claim(files, graph.file)
    for experiment_id, experiment in manifest.experiments.items():
        _validate_experiment(manifest, experiment_id, experiment)
    adapters = manifest.user_adapters
    if adapters is not None:
        problems = _file_and_hash_problems(adapters.file, adapters.sha256)
        if problems:
            raise BundleError("user_adapters: " + "; ".join(problems))
        _claim(files, adapters.file)


def _claim(files: set[str], name: str) -> None:
    if name in files:
        raise BundleError(f"file {name!r} is listed twice")
    files.add(name)


def _file_and_hash_problems(file: str, sha256: str) -> list[str]:
    problems = []
    if Path(file).name != file or file in ("", ".", "..", MANIFEST_NAME):
        problems.append(f"file must be a plain file name, got {file!r}")
    if not _SHA256_RE.fullmatch(sha256):
        problems.append("sha256 must be 64 lowercase hex digits")
    return problems


def _validate_model(task: str, version: str, model: ModelEntry) -> None:
    where = f"tasks.{task}.models.{version}"
    spec = task_spec(task)
    expected = (spec.input_tensor, spec.output_tensor, len(spec.outputs))
    problems = []
    if not NAME_RE.fullmatch(version):
        problems.append(f"version must match {NAME_RE.pattern}")
    if model.version != version:
        problems.append(f"entry version {model.version!r} differs from its key")
    if (model.reference is None) != (model.reference_sha256 is None):
        problems.append("reference and reference_sha256 come together")
    for name, digest in model.files.items():
        problems += _file_and_hash_problems(name, digest)
    if model.status not in MODEL_STATUSES:
        problems.append(f"status must be one of {list(MODEL_STATUSES)}, got {model.status!r}")
    if not 0.0 <= model.rollout_pct <= 100.0:
        problems.append(f"rollout_pct must be in [0, 100], got {model.rollout_pct}")
    if (model.input_name, model.output_name, model.output_dim) != expected:
        problems.append(
            f"I/O must be {expected[0]!r} -> {expected[1]!r} [batch, {expected[2]}], got "
            f"{model.input_name!r} -> {model.output_name!r} [batch, {model.output_dim}]"
        )
    if model.input_dim < 1:
        problems.append(f"input_dim must be positive, got {model.input_dim}")
    if problems:
        raise BundleError(f"{where}: " + "; ".join(problems))


def _validate_edge(name: str, graph: EdgeGraph) -> None:
    problems = [] if NAME_RE.fullmatch(name) else [f"name must match {NAME_RE.pattern}"]
    problems += _file_and_hash_problems(graph.file, graph.sha256)
    if not graph.sample_rates or any(rate <= 0 for rate in graph.sample_rates):
        problems.append(f"sample_rates must be positive rates, got {list(graph.sample_rates)}")
    if not graph.names:
        problems.append("names must list the names of the graph's output values")
    if problems:
        raise BundleError(f"edge.{name}: " + "; ".join(problems))


def experiment_problems(experiment: Experiment) -> list[str]:
    """What makes ``experiment`` unusable on its own (names, weights, coverage); empty if
    valid. For manifests and for ``ab_experiments`` rows (:mod:`mixai_inference.control`)."""
    problems = []
    if experiment.task not in task_names():
        problems.append(f"unknown task {experiment.task!r}")
    if not experiment.variants:
        problems.append("needs at least one variant")
    # ASCII names keep the sort order of every language the same (see docs/deployment.md).
    bad_names = sorted(n for n in experiment.variants if not NAME_RE.fullmatch(n))
    if bad_names:
        problems.append(f"variant names must match {NAME_RE.pattern}: {bad_names}")
    if set(experiment.weights) != set(experiment.variants):
        problems.append(
            f"weights {sorted(experiment.weights)} must name the same variants as "
            f"variants {sorted(experiment.variants)}"
        )
    elif any(not w >= 0 for w in experiment.weights.values()) or not (
        sum(experiment.weights.values()) > 0
    ):
        problems.append("weights must be non-negative and not all zero")
    if not 0.0 <= experiment.coverage <= 1.0:
        problems.append(f"coverage must be in [0, 1], got {experiment.coverage}")
    return problems


def _validate_experiment(manifest: Manifest, experiment_id: str, experiment: Experiment) -> None:
    where = f"experiments.{experiment_id}"
    problems = experiment_problems(experiment)
    if experiment.experiment_id != experiment_id:
        problems.insert(0, f"entry id {experiment.experiment_id!r} differs from its key")
    task = manifest.tasks.get(experiment.task)
    shipped = {} if task is None else task.models
    for variant, version in experiment.variants.items():
        if version is None:
            continue
        model = shipped.get(version)
        if model is None:
            problems.append(f"variant {variant!r} names version {version!r}, not in the bundle")
        elif model.status == "retired":
            problems.append(f"variant {variant!r} names the retired version {version!r}")
    if problems:
        raise BundleError(f"{where}: " + "; ".join(problems))
