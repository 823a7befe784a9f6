"""The deployable model bundle: ``manifest.json``, the ONNX files and their training references.

One definition for both sides: the export pipeline builds a :class:`Manifest` and
calls :func:`write_bundle`; production calls :func:`read_manifest` (through
:meth:`mixai_inference.Predictor.from_bundle`). Only :mod:`json` and
:mod:`hashlib` are used to read a bundle, so reading one never runs code.

Layout::

    bundle/
      manifest.json
      master_reg-<version>.onnx      # any file name; the manifest says which
      master_reg-<version>.reference.json   # its training reference (mixai_inference.ood)
      preset_cls-<version>.onnx
      align_conf-<version>.onnx
      features.onnx, alignment.onnx  # optional edge graphs for the browser (docs/edge.md)
      user_adapters.json             # optional per-user adapters (mixai_inference.adapters)

``manifest.json`` (``format_version`` 1)::

    {
      "format_version": 1,
      "created_at": "2025-01-10T03:00:00Z",
      "feature_schema_version": "1",
      "flags": {"enable_cpu_ml": false, "enable_master_regression": true,
                "enable_preset_recommendation": true, "enable_align_confidence": true},
      "tasks": {
        "master_reg": {
          "active_version": "20250110-a1b2",          # or null: the task answers from rules
          "ood_policy": "flag",                       # off / flag / fallback, or null
          "models": {
            "20250110-a1b2": {
              "file": "master_reg-20250110-a1b2.onnx", "sha256": "<64 hex>",
              "status": "active", "rollout_pct": 100.0,
              "feature_schema_version": "1",
              "input_name": "features", "input_dim": 160,
              "output_name": "params", "output_dim": 8,
              "metrics": {"mae_norm": 0.08}, "created_at": "2025-01-10T02:59:00Z",
              "reference": "master_reg-20250110-a1b2.reference.json",   # or null
              "reference_sha256": "<64 hex>"
            }
          }
        },
        "preset_cls": {...}, "align_conf": {...}
      },
      "experiments": {
        "exp-master-v2": {"task": "master_reg",
                          "variants": {"control": "20250110-a1b2", "treatment": "20250117-c3d4"},
                          "weights": {"control": 50, "treatment": 50},
                          "coverage": 0.2, "salt": null}
      },
      "user_adapters": {"file": "user_adapters.json", "sha256": "<64 hex>"},   # optional
      "edge": {
        "features": {"file": "features.onnx", "sha256": "<64 hex>",
                     "sample_rates": [22050, 44100, 48000], "names": [<FEATURE_NAMES>]},
        "alignment": {"file": "alignment.onnx", "sha256": "<64 hex>",
                      "sample_rates": [16000, 44100, 48000], "names": [...]}
      }
    }

Each task's I/O names and output width come from its spec in the task registry
(:mod:`mixai_inference.tasks`); the input width is the length of the feature vector the
model was trained on and is checked by the predictor, not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mixai_inference._atomic import fsync_dir, swap_in, write_synced
from mixai_inference._manifest_rules import (
    MANIFEST_NAME,
    MODEL_STATUSES,
    BundleError,
    expect,
    experiment_problems,
    finite_number,
    optional_str,
    validate,
)
from mixai_inference.adapters import AdapterFile

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MODEL_STATUSES",
    "BundleError",
    "EdgeGraph",
    "Experiment",
    "Manifest",
    "ModelEntry",
    "TaskEntry",
    "experiment_problems",
    "read_manifest",
    "sha256_bytes",
    "sha256_file",
    "utc_now_iso",
    "write_bundle",
]

FORMAT_VERSION: Final = 1


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ModelEntry:
    """One ONNX model of a task, as listed in the manifest."""

    version: str
    file: str
    sha256: str
    status: str
    rollout_pct: float
    """Share of users (0–100) the *active* version serves; users outside get the rules.
    Informational for other statuses (mirrors ``model_registry``)."""
    feature_schema_version: str
    input_name: str
    input_dim: int
    output_name: str
    output_dim: int
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    reference: str | None = None
    """The file of the model's training reference (:mod:`mixai_inference.ood`), if any."""
    reference_sha256: str | None = None

    @property
    def files(self) -> dict[str, str]:
        """Each file of this model (the ONNX file, its reference) → its SHA-256."""
        files = {self.file: self.sha256}
        if self.reference is not None:
            files[self.reference] = str(self.reference_sha256)
        return files

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON object of this entry (without the version, which is its key)."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "status": self.status,
            "rollout_pct": self.rollout_pct,
            "feature_schema_version": self.feature_schema_version,
            "input_name": self.input_name,
            "input_dim": self.input_dim,
            "output_name": self.output_name,
            "output_dim": self.output_dim,
            "metrics": dict(self.metrics),
            "created_at": self.created_at,
            "reference": self.reference,
            "reference_sha256": self.reference_sha256,
        }


@dataclass(frozen=True)
class TaskEntry:
    """A task's models: the active version (or none) and every other shipped version."""

    active_version: str | None
    models: Mapping[str, ModelEntry]
    ood_policy: str | None = None
    """What an out-of-distribution input does (:data:`mixai_inference.ood.POLICIES`);
    ``None``: the package default."""

    @property
    def active(self) -> ModelEntry | None:
        """The active model, or ``None`` when the task has none."""
        return None if self.active_version is None else self.models[self.active_version]


@dataclass(frozen=True)
class Experiment:
    """An A/B experiment over model versions of one task.

    ``variants`` maps each variant name to a model version of ``task``, or to ``None``
    for a variant answered by the rules (e.g. an ML-vs-rules experiment). Users are
    assigned with :func:`mixai_inference.routing.assign_variant`.
    """

    experiment_id: str
    task: str
    variants: Mapping[str, str | None]
    weights: Mapping[str, float]
    coverage: float = 1.0
    salt: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON object of this experiment (without its id, which is its key)."""
        return {
            "task": self.task,
            "variants": dict(self.variants),
            "weights": dict(self.weights),
            "coverage": self.coverage,
            "salt": self.salt,
        }


@dataclass(frozen=True)
class EdgeGraph:
    """A graph the browser runs beside the models (docs/edge.md): ``features`` computes the
    feature vector from decoded audio, ``alignment`` the alignment features of a pair."""

    file: str
    sha256: str
    sample_rates: tuple[int, ...]
    """The input sample rates the graph takes (the graph's ``supported_sample_rates``)."""
    names: tuple[str, ...]
    """The names of the values of its vector output (``FEATURE_NAMES``,
    ``ALIGNMENT_FEATURE_NAMES``), in order."""

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON object of this graph (without its name, which is its key)."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "sample_rates": list(self.sample_rates),
            "names": list(self.names),
        }


@dataclass(frozen=True)
class Manifest:
    """The content of ``manifest.json``; build one and pass it to :func:`write_bundle`."""

    feature_schema_version: str
    tasks: Mapping[str, TaskEntry]
    flags: Mapping[str, bool] = field(default_factory=dict)
    """Flag defaults of this bundle; missing flags take the package defaults
    (see :mod:`mixai_inference.flags`), environment variables override them."""
    experiments: Mapping[str, Experiment] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now_iso)
    format_version: int = FORMAT_VERSION
    edge: Mapping[str, EdgeGraph] = field(default_factory=dict)
    """The edge graphs by name (``features``, ``alignment``); the Python runtime ignores
    them, the web app (``make edge``) runs them. Optional: older manifests have none."""
    user_adapters: AdapterFile | None = None
    """The per-user adapters shipped with the models, if any."""

    def __post_init__(self) -> None:
        validate(self)

    @property
    def files(self) -> dict[str, str]:
        """Every file the manifest lists (models, their references, edge graphs) → its sha256."""
        listed = {
            name: digest
            for entry in self.tasks.values()
            for model in entry.models.values()
            for name, digest in model.files.items()
        }
        if self.user_adapters is not None:
            listed[self.user_adapters.file] = self.user_adapters.sha256
        return listed | {graph.file: graph.sha256 for graph in self.edge.values()}

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``."""
        return {
            "format_version": self.format_version,
            "created_at": self.created_at,
            "feature_schema_version": self.feature_schema_version,
            "flags": dict(self.flags),
            "tasks": {
                task: {
                    "active_version": entry.active_version,
                    "ood_policy": entry.ood_policy,
                    "models": {v: model.to_json() for v, model in entry.models.items()},
                }
                for task, entry in self.tasks.items()
            },
            "experiments": {eid: exp.to_json() for eid, exp in self.experiments.items()},
            "edge": {name: graph.to_json() for name, graph in self.edge.items()},
            **({"user_adapters": self.user_adapters.to_json()} if self.user_adapters else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse the JSON object of ``manifest.json``.

        Raises:
            BundleError: If a field is missing, of the wrong type or inconsistent.
        """
        obj = expect(data, dict, "manifest")
        version = expect(obj.get("format_version"), int, "format_version")
        if version > FORMAT_VERSION:
            raise BundleError(
                f"manifest format_version {version} is newer than this package reads "
                f"({FORMAT_VERSION}); upgrade mixai-inference"
            )
        tasks = {
            task: _task_from_json(task, raw)
            for task, raw in expect(obj.get("tasks", {}), dict, "tasks").items()
        }
        experiments = {
            eid: _experiment_from_json(eid, raw)
            for eid, raw in expect(obj.get("experiments", {}), dict, "experiments").items()
        }
        edge = {
            name: _edge_from_json(name, raw)
            for name, raw in expect(obj.get("edge", {}), dict, "edge").items()
        }
        return cls(
            feature_schema_version=expect(
                obj.get("feature_schema_version"), str, "feature_schema_version"
            ),
            tasks=tasks,
            flags=expect(obj.get("flags", {}), dict, "flags"),
            experiments=experiments,
            created_at=expect(obj.get("created_at"), str, "created_at"),
            format_version=version,
            edge=edge,
            user_adapters=_adapters_from_json(obj.get("user_adapters")),
        )


def sha256_bytes(data: bytes) -> str:
    """The lowercase hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """The lowercase hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(bundle_dir: str | os.PathLike[str]) -> Manifest:
    """Read and validate ``<bundle_dir>/manifest.json``.

    Model files are not opened here; the predictor verifies their SHA-256.

    Raises:
        BundleError: If the manifest is missing, not JSON or not a valid manifest.
    """
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot read the bundle manifest {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return Manifest.from_json(data)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from exc


def write_bundle(
    bundle_dir: str | os.PathLike[str],
    manifest: Manifest,
    files: Mapping[str, bytes | str | os.PathLike[str]],
) -> Path:
    """Write a bundle atomically: a complete new folder replaces the old one.

    The files and ``manifest.json`` are written to a temporary folder next to
    ``bundle_dir`` and fsynced; then the old bundle (if any) is renamed aside, the new
    folder renamed into place, the parent folder fsynced, and the old bundle deleted.
    A reader therefore sees the complete old bundle, the complete new one, or (for the
    instant between the two renames) none, never a mix. If anything fails before the
    swap the old bundle is untouched and the temporary folder removed.

    Args:
        bundle_dir: The bundle folder, e.g. ``data/06_models/bundle``.
        manifest: What to write; every model file it lists must be in ``files``.
        files: File name (no folders) → content, as bytes or as a path to copy.

    Returns:
        The bundle folder.

    Raises:
        BundleError: If a listed file is not given, an extra file is given, or a file's
            SHA-256 differs from its manifest entry.
    """
    target = Path(bundle_dir)
    listed = manifest.files
    extra = sorted(set(files) - set(listed))
    missing = sorted(set(listed) - set(files))
    if extra or missing:
        raise BundleError(
            f"files do not match the manifest: missing {missing or 'none'}, "
            f"not listed {extra or 'none'}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else Path(content).read_bytes()
            digest = sha256_bytes(data)
            if digest != listed[name]:
                raise BundleError(
                    f"{name}: sha256 {digest} differs from the manifest's {listed[name]}"
                )
            write_synced(staging / name, data)
        manifest_text = json.dumps(manifest.to_json(), indent=2, sort_keys=False) + "\n"
        write_synced(staging / MANIFEST_NAME, manifest_text.encode("utf-8"))
        fsync_dir(staging)
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --- parsing ------------------------------------------------------------------------------


def _model_from_json(task: str, version: str, raw: Any) -> ModelEntry:
    where = f"tasks.{task}.models.{version}"
    obj = expect(raw, dict, where)
    return ModelEntry(
        version=version,
        file=expect(obj.get("file"), str, f"{where}.file"),
        sha256=expect(obj.get("sha256"), str, f"{where}.sha256"),
        status=expect(obj.get("status"), str, f"{where}.status"),
        rollout_pct=finite_number(obj.get("rollout_pct"), f"{where}.rollout_pct"),
        feature_schema_version=expect(
            obj.get("feature_schema_version"), str, f"{where}.feature_schema_version"
        ),
        input_name=expect(obj.get("input_name"), str, f"{where}.input_name"),
        input_dim=expect(obj.get("input_dim"), int, f"{where}.input_dim"),
        output_name=expect(obj.get("output_name"), str, f"{where}.output_name"),
        output_dim=expect(obj.get("output_dim"), int, f"{where}.output_dim"),
        metrics=expect(obj.get("metrics", {}), dict, f"{where}.metrics"),
        created_at=optional_str(obj.get("created_at"), f"{where}.created_at"),
        reference=optional_str(obj.get("reference"), f"{where}.reference"),
        reference_sha256=optional_str(obj.get("reference_sha256"), f"{where}.reference_sha256"),
    )


def _task_from_json(task: str, raw: Any) -> TaskEntry:
    obj = expect(raw, dict, f"tasks.{task}")
    models = expect(obj.get("models", {}), dict, f"tasks.{task}.models")
    return TaskEntry(
        active_version=optional_str(obj.get("active_version"), f"tasks.{task}.active_version"),
        models={version: _model_from_json(task, version, m) for version, m in models.items()},
        ood_policy=optional_str(obj.get("ood_policy"), f"tasks.{task}.ood_policy"),
    )


def _experiment_from_json(experiment_id: str, raw: Any) -> Experiment:
    where = f"experiments.{experiment_id}"
    obj = expect(raw, dict, where)
    variants = expect(obj.get("variants"), dict, f"{where}.variants")
    weights = expect(obj.get("weights"), dict, f"{where}.weights")
    return Experiment(
        experiment_id=experiment_id,
        task=expect(obj.get("task"), str, f"{where}.task"),
        variants={
            name: optional_str(v, f"{where}.variants.{name}") for name, v in variants.items()
        },
        weights={name: finite_number(w, f"{where}.weights.{name}") for name, w in weights.items()},
        coverage=finite_number(obj.get("coverage", 1.0), f"{where}.coverage"),
        salt=optional_str(obj.get("salt"), f"{where}.salt"),
    )


def _adapters_from_json(raw: Any) -> AdapterFile | None:
    if raw is None:
        return None
    obj = expect(raw, dict, "user_adapters")
    return AdapterFile(
        file=expect(obj.get("file"), str, "user_adapters.file"),
        sha256=expect(obj.get("sha256"), str, "user_adapters.sha256"),
    )


def _edge_from_json(name: str, raw: Any) -> EdgeGraph:
    where = f"edge.{name}"
    obj = expect(raw, dict, where)
    rates = expect(obj.get("sample_rates"), list, f"{where}.sample_rates")
    names = expect(obj.get("names"), list, f"{where}.names")
    return EdgeGraph(
        file=expect(obj.get("file"), str, f"{where}.file"),
        sha256=expect(obj.get("sha256"), str, f"{where}.sha256"),
        sample_rates=tuple(expect(rate, int, f"{where}.sample_rates[]") for rate in rates),
        names=tuple(expect(name, str, f"{where}.names[]") for name in names),
    )
