"""The production predictor: ONNX models from a bundle, with the rules as the safety net.

:meth:`Predictor.from_bundle` reads a bundle (see :mod:`mixai_inference.bundle`) and
answers :meth:`~Predictor.predict` (mastering parameters and preset of a mix) and
:meth:`~Predictor.align` (vocal offset and the confidence in it). Every answer says
where it came from: ``source`` (``ml`` or ``rules``), the model version and A/B
variant it was routed to, and the reason when the rules answered.

Guarantees:

* **A valid input never gets an exception.** Any model problem (missing, corrupt or
  tampered file, schema mismatch, load or runtime error, wrong output shape,
  non-finite output) makes that task answer from :mod:`mixai_inference.rules` with a
  reason code (:data:`REASONS`). A missing or unreadable bundle gives a predictor that
  answers everything from the rules (reason ``bundle_unavailable``): production keeps
  answering, and ``from_bundle`` does not raise. Invalid input is the caller's bug:
  features of the wrong length raise :class:`ValueError`; non-finite features are
  answered by the rules (which replace non-finite values by typical ones) with reason
  ``invalid_features``.
* **At most** ``max_sessions`` **onnxruntime sessions exist** (default 5), in a
  thread-safe LRU cache. A session is loaded by one thread while the others wait for
  it (no duplicate loads), verified (SHA-256 of the bytes loaded, ``metadata_props``
  task / version / feature schema, I/O names and widths) and warmed with one run
  before use. An evicted session still running elsewhere counts until its run ends.
  Sessions run with one intra-op and one inter-op thread, sequential execution and no
  spinning, so workers scale by process.
* **Routing** (per task; see ``docs/deployment.md``): a ``user_id`` inside one of the
  task's experiments (ids in ascending order, first match wins) gets the model
  version of their variant (:func:`~mixai_inference.routing.assign_variant`);
  otherwise the active version, if the user is inside its ``rollout_pct``
  (``assign_variant(user_id, "rollout:" + task, {version: 1}, rollout_pct / 100)``,
  the same users stay in as the percentage rises, across versions). Calls without a
  ``user_id`` get the active version unless its ``rollout_pct`` is 0. Decisions are
  cached per user (LRU).
* **Every answer is recorded** in the metrics sink (one ``model_metrics`` row per task).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import le
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mixai_inference.bundle import (
    MODEL_IO,
    BundleError,
    Manifest,
    ModelIO,
    read_manifest,
    sha256_bytes,
    sha256_file,
)
from mixai_inference.flags import Flags, resolve_flags
from mixai_inference.metrics import MetricRecord, MetricsSink
from mixai_inference.routing import assign_variant
from mixai_inference.rules import Rules
from mixai_inference.tasks import (
    ALIGN_CONF,
    MASTER_PARAM_NAMES,
    MASTER_PARAM_RANGES,
    MASTER_REG,
    PRESET_CLS,
    PRESETS,
    TASKS,
)

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

_DELIBERATE: Final = {  # the rules answer by configuration: recorded with ok=true
    "disabled": "the task's flag (or enable_cpu_ml) is off",
    "no_bundle": "the predictor was made without a bundle (Predictor.rules_only)",
    "no_model": "the bundle has no active model for the task",
    "rollout": "the user is outside the active version's rollout_pct",
    "variant_rules": "the user's experiment variant is answered by the rules",
}
_FAILURES: Final = {  # something went wrong: recorded with ok=false
    "bundle_unavailable": "the bundle's manifest is missing, unreadable or invalid",
    "invalid_features": "the input features contain NaN or infinity",
    "file_missing": "the model file named by the manifest does not exist",
    "sha256_mismatch": "the model file's SHA-256 differs from the manifest (tampered/corrupt)",
    "schema_mismatch": "the model's feature schema or input width differs from the package's",
    "metadata_mismatch": "the ONNX metadata_props task/version differ from the manifest",
    "io_mismatch": "the ONNX graph's input/output names or widths break the model contract",
    "load_error": "onnxruntime could not load or warm up the model",
    "runtime_error": "onnxruntime raised while running the model",
    "bad_output": "the model's output has the wrong shape or is not a usable distribution",
    "non_finite_output": "the model returned NaN or infinity",
}
REASONS: Final = MappingProxyType({**_DELIBERATE, **_FAILURES})
"""Every fallback reason code and what it means."""

FAILURE_REASONS: Final = frozenset(_FAILURES)
"""Reasons that mean something failed; their metrics rows have ``ok=false``."""

ROLLOUT_SALT_PREFIX: Final = "rollout:"

_FEATURES_INPUT: Final = MODEL_IO[MASTER_REG].input_name
_ALIGN_INPUT: Final = MODEL_IO[ALIGN_CONF].input_name
assert MODEL_IO[PRESET_CLS].input_name == _FEATURES_INPUT  # predict() feeds both models alike

_LOWS: Final = tuple(low for low, _ in MASTER_PARAM_RANGES.values())
_HIGHS: Final = tuple(high for _, high in MASTER_PARAM_RANGES.values())


# --- results -------------------------------------------------------------------------------


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

    def fallback(self, reason: str) -> Provenance:
        """The same routing, answered by the rules for ``reason``."""
        return Provenance("rules", self.model_version, self.variant, self.experiment_id, reason)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "source": self.source,
            "model_version": self.model_version,
            "variant": self.variant,
            "experiment_id": self.experiment_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    """The answer of :meth:`Predictor.predict`."""

    params: Mapping[str, float]
    """The 8 mastering parameters (CONTRACTS §5), in ``MASTER_PARAM_NAMES`` order."""
    preset: str
    preset_scores: Mapping[str, float]
    """Probability of each preset (``PRESETS`` order), summing to 1."""
    master_reg: Provenance
    preset_cls: Provenance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the parameters under their names, ``preset``, ``preset_scores``,
        and ``master_reg`` / ``preset_cls`` provenance objects (CONTRACTS §7)."""
        return {
            **self.params,
            "preset": self.preset,
            "preset_scores": dict(self.preset_scores),
            MASTER_REG: self.master_reg.to_dict(),
            PRESET_CLS: self.preset_cls.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class AlignResult:
    """The answer of :meth:`Predictor.align`."""

    offset_ms: float
    """How much later the vocal starts than the instrumental (rule-based aligner)."""
    confidence: float
    """Probability that ``offset_ms`` is right within ``ALIGN_TOLERANCE_MS``."""
    align_conf: Provenance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``offset_ms``, ``confidence`` and the ``align_conf`` provenance."""
        return {
            "offset_ms": self.offset_ms,
            "confidence": self.confidence,
            ALIGN_CONF: self.align_conf.to_dict(),
        }


# --- session cache -------------------------------------------------------------------------


class _RunError(Exception):
    """``session.run`` failed (the message of onnxruntime's error, without its frames)."""


class _LoadFailure(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


_Key = tuple[str, str]
_SLOT_WAIT_S: Final = 30.0


class SessionCache:
    """LRU cache of onnxruntime sessions; at most ``capacity`` exist at any time.

    ``alive`` counts every session from the start of its load until it is freed: cached,
    loading, or evicted but still running in another thread (CPython frees a session
    when its last run returns; a finalizer reports it). A load starts only when
    ``alive < capacity``: otherwise the least recently used session is evicted, or the
    loader waits for an evicted one still running to finish. A key being loaded is
    reserved, so that other threads wait for that load instead of repeating it. A
    failed load is remembered and not retried. The hot path (a cached session) takes no
    lock: a dict lookup and a recency stamp from a shared counter, each atomic in
    CPython; eviction, under the lock, picks the session with the oldest stamp.

    A cached session runs through its C++ binding (``InferenceSession._sess.run``, there
    since onnxruntime 1.0; the public ``run`` when absent): the public method re-checks
    on every call what the load verified once (input names, OrtValue ownership, graph
    capture), about 1 µs of the ~9 µs a small model takes.
    """

    def __init__(self, capacity: int, load: Callable[[_Key], onnxruntime.InferenceSession]):
        if capacity < 1:
            raise ValueError(f"max_sessions must be at least 1, got {capacity}")
        self.capacity = capacity
        self._load = load
        # key -> (session, its run function); key -> recency stamp
        self._sessions: dict[_Key, tuple[onnxruntime.InferenceSession, Any]] = {}
        self._stamps: dict[_Key, int] = {}
        self._tick = itertools.count()
        self._loading: set[_Key] = set()
        self._failures: dict[_Key, str] = {}  # reasons only: no traceback may keep a session
        # reentrant: evicting an idle session frees it at once, and its finalizer reports
        # that under the lock the evicting thread holds
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.alive = 0
        self._evicted_alive = 0  # evicted sessions that are still running somewhere
        self.loads = 0
        self.evictions = 0

    def run(self, key: _Key, output_names: Sequence[str], feed: dict[str, np.ndarray]) -> Any:
        """``session.run(output_names, feed)`` on the session of ``key``.

        Raises:
            _LoadFailure: If the session cannot be loaded (now or before).
        """
        entry = self._sessions.get(key)
        if entry is None:
            entry = self._acquire(key)
        self._stamps[key] = next(self._tick)
        try:
            return entry[1](output_names, feed, None)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            del entry
        # raised outside the handler: the original traceback (whose frames hold the
        # session) is freed now, so an evicted session is freed when its run ends
        raise _RunError(error)

    def load(self, key: _Key) -> None:
        """Make sure the session of ``key`` is loaded (and warmed).

        Raises:
            _LoadFailure: If it cannot be loaded.
        """
        self._acquire(key)

    def info(self) -> dict[str, Any]:
        """Cached keys (least recently used first), live sessions, counters, failures."""
        with self._cond:
            return {
                "capacity": self.capacity,
                "sessions": sorted(self._sessions, key=self._stamps.__getitem__),
                "alive": self.alive,
                "loads": self.loads,
                "evictions": self.evictions,
                "failures": dict(self._failures),
            }

    def _acquire(self, key: _Key) -> tuple[onnxruntime.InferenceSession, Any]:
        """The slow path: wait for a load elsewhere or for room, or load the key here."""
        with self._cond:
            while True:
                failure = self._failures.get(key)
                if failure is not None:
                    raise _LoadFailure(failure, "failed before")
                entry = self._sessions.get(key)
                if entry is not None:
                    return entry
                if key not in self._loading:
                    if self.alive < self.capacity:
                        break
                    if self._sessions and not self._evicted_alive:
                        self._evicted_alive += 1
                        self.evictions += 1
                        oldest = min(self._sessions, key=self._stamps.__getitem__)
                        del self._sessions[oldest]  # may free it (and report that) now
                        continue
                # for the key's load, or for an evicted session to go; bounded, so that a
                # leaked session reference could cost answers from the rules, never a hang
                if not self._cond.wait(timeout=_SLOT_WAIT_S):
                    raise _LoadFailure("load_error", f"no session slot in {_SLOT_WAIT_S} s")
            self._loading.add(key)
            self.alive += 1
        try:
            session = self._load(key)
        except BaseException as exc:
            with self._cond:
                self._loading.discard(key)
                self.alive -= 1
                if isinstance(exc, _LoadFailure):
                    self._failures[key] = exc.reason
                self._cond.notify_all()
            raise
        # through a weak reference: the finalizer registry must not keep the cache alive
        weakref.finalize(session, _report_freed, weakref.ref(self)).atexit = False
        entry = (session, getattr(getattr(session, "_sess", None), "run", session.run))
        with self._cond:
            self._loading.discard(key)
            self._stamps[key] = next(self._tick)
            self._sessions[key] = entry
            self.loads += 1
            self._cond.notify_all()
        return entry

    def _freed(self) -> None:
        """A session was freed; while the cache lives, only evicted ones are."""
        with self._cond:
            self.alive -= 1
            self._evicted_alive -= 1
            self._cond.notify_all()


def _report_freed(cache: weakref.ref[SessionCache]) -> None:
    alive = cache()
    if alive is not None:
        alive._freed()


# --- the predictor -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    """A routing decision, with what the hot path needs precomputed."""

    provenance: Provenance  # of the model's answer, or of the rules' when key is None
    key: _Key | None = None  # the session to run
    outputs: tuple[Sequence[str], tuple[int, int]] = ((), (0, 0))  # output names, shape


@dataclass(frozen=True)
class _TaskPlan:
    """What a task can do, decided once when the bundle is read."""

    task: str
    io: ModelIO
    input_dim: int
    reason: str | None  # the whole task answers from the rules for this reason
    active: str | None
    rollout: float  # the active version's rollout_pct / 100
    experiments: tuple[
        tuple[str, Mapping[str, str | None], Mapping[str, float], float, str | None], ...
    ]
    static_failures: Mapping[str, str]  # version -> reason found when the bundle was read
    files: Mapping[str, Path]
    sha256: Mapping[str, str]


class Predictor:
    """Answers the three tasks from a bundle's ONNX models, falling back to the rules.

    Build one with :meth:`from_bundle` (or :meth:`rules_only`) and share it between
    threads; see the module documentation for the guarantees.
    """

    def __init__(
        self,
        manifest: Manifest | None,
        bundle_dir: Path | None,
        *,
        flags: Flags,
        metrics_sink: MetricsSink,
        rules: Rules,
        feature_schema_version: str,
        unavailable_reason: str | None = None,
        bundle_error: str | None = None,
        max_sessions: int = 5,
        route_cache_size: int = 65_536,
    ) -> None:
        self.manifest = manifest
        self.bundle_dir = bundle_dir
        self.bundle_error = bundle_error
        self.flags = flags
        self.metrics = metrics_sink
        self.rules = rules
        self.feature_schema_version = feature_schema_version
        self._sessions = SessionCache(max_sessions, self._load_session)
        self._session_options: onnxruntime.SessionOptions | None = None
        self._warned: set[tuple[str, str, str]] = set()
        self._n_features = len(rules.feature_names)
        self._n_align = len(rules.alignment_feature_names)
        input_dims = {
            MASTER_REG: self._n_features,
            PRESET_CLS: self._n_features,
            ALIGN_CONF: self._n_align,
        }
        self._plans = {
            task: self._plan(task, input_dims[task], unavailable_reason) for task in TASKS
        }
        self._shared_routes: dict[tuple[str | None, ...], _Route] = {}
        self._routes = functools.lru_cache(maxsize=route_cache_size)(self._route_all)

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        *,
        flags: Flags | None = None,
        metrics_sink: MetricsSink | None = None,
        max_sessions: int = 5,
        preload: bool = True,
        route_cache_size: int = 65_536,
        rules: Rules | None = None,
        feature_schema_version: str | None = None,
    ) -> Predictor:
        """A predictor serving the bundle in ``path``.

        Never raises for a bad bundle: an unreadable manifest logs a warning and gives a
        predictor whose every answer comes from the rules with reason
        ``bundle_unavailable`` (the message is in :attr:`bundle_error`). Each model file's
        SHA-256 is checked here (a mismatch or a missing file makes that version answer
        from the rules) and again on every load.

        Args:
            path: The bundle folder (``manifest.json`` and the ONNX files).
            flags: Effective flags; default: :func:`~mixai_inference.flags.resolve_flags`
                of the manifest's flags and the environment.
            metrics_sink: Where answers are recorded; default
                :meth:`MetricsSink.from_env() <mixai_inference.metrics.MetricsSink.from_env>`.
            max_sessions: Most onnxruntime sessions alive at once.
            preload: Load and warm the active model of every enabled task now, so that
                the first requests do not pay for it.
            route_cache_size: Users whose routing decisions are cached.
            rules: The rules (and thus the feature names) to serve; default: the
                package's features. For tests and tools working on another schema.
            feature_schema_version: The schema the models must have been trained on;
                default: the package's ``FEATURE_SCHEMA_VERSION``.
        """
        bundle_dir = Path(path)
        manifest: Manifest | None = None
        error: str | None = None
        try:
            manifest = read_manifest(bundle_dir)
        except BundleError as exc:
            error = str(exc)
            logger.warning("bundle unavailable, every task answers from the rules: %s", error)
        predictor = cls(
            manifest,
            bundle_dir,
            flags=flags or resolve_flags(manifest.flags if manifest else None),
            metrics_sink=metrics_sink or MetricsSink.from_env(),
            rules=rules or Rules.default(),
            feature_schema_version=feature_schema_version or _package_schema_version(),
            unavailable_reason=None if manifest else "bundle_unavailable",
            bundle_error=error,
            max_sessions=max_sessions,
            route_cache_size=route_cache_size,
        )
        if preload:
            predictor.preload()
        return predictor

    @classmethod
    def rules_only(
        cls,
        *,
        flags: Flags | None = None,
        metrics_sink: MetricsSink | None = None,
        rules: Rules | None = None,
    ) -> Predictor:
        """A predictor without a bundle: every answer from the rules, reason ``no_bundle``."""
        return cls(
            None,
            None,
            flags=flags or resolve_flags(),
            metrics_sink=metrics_sink or MetricsSink.from_env(),
            rules=rules or Rules.default(),
            feature_schema_version=_package_schema_version(),
            unavailable_reason="no_bundle",
        )

    def _plan(self, task: str, input_dim: int, unavailable: str | None) -> _TaskPlan:
        io = MODEL_IO[task]
        manifest, bundle_dir = self.manifest, self.bundle_dir
        # an unusable bundle outranks the flags: its flags are lost with it
        reason = unavailable or (None if self.flags.ml_enabled(task) else "disabled")
        if (
            reason is None
            and manifest
            and manifest.feature_schema_version != self.feature_schema_version
        ):
            reason = "schema_mismatch"
        entry = manifest.tasks.get(task) if manifest else None
        if reason is not None or entry is None or manifest is None or bundle_dir is None:
            return _TaskPlan(task, io, input_dim, reason or "no_model", None, 0.0, (), {}, {}, {})

        files = {v: bundle_dir / m.file for v, m in entry.models.items()}
        failures = {}
        for version, model in entry.models.items():
            if model.status == "retired":
                continue
            if (model.feature_schema_version, model.input_dim) != (
                self.feature_schema_version,
                input_dim,
            ):
                failures[version] = "schema_mismatch"
            elif not files[version].is_file():
                failures[version] = "file_missing"
            elif sha256_file(files[version]) != model.sha256:
                failures[version] = "sha256_mismatch"
        for version, failure in failures.items():
            logger.warning("%s %s answers from the rules: %s", task, version, failure)
        experiments = tuple(
            (eid, exp.variants, exp.weights, exp.coverage, exp.salt)
            for eid, exp in sorted(manifest.experiments.items())
            if exp.task == task
        )
        active = entry.active
        return _TaskPlan(
            task=task,
            io=io,
            input_dim=input_dim,
            reason=None,
            active=entry.active_version,
            rollout=0.0 if active is None else active.rollout_pct / 100.0,
            experiments=experiments,
            static_failures=failures,
            files=files,
            sha256={v: m.sha256 for v, m in entry.models.items()},
        )

    def preload(self) -> None:
        """Load and warm the active model of every task that may use one (failures are
        remembered and answered by the rules)."""
        for plan in self._plans.values():
            if plan.reason is None and plan.active and plan.active not in plan.static_failures:
                with contextlib.suppress(_LoadFailure):
                    self._sessions.load((plan.task, plan.active))

    def cache_info(self) -> dict[str, Any]:
        """The session cache: loaded ``(task, version)`` keys, loads, evictions, failures."""
        return self._sessions.info()

    def close(self) -> None:
        """Flush the metrics sink's JSONL writer."""
        self.metrics.close()

    # --- routing -----------------------------------------------------------------------------

    def route(self, task: str, user_id: str | None = None) -> Provenance:
        """Where ``user_id``'s requests for ``task`` go (before any model runs)."""
        return self._routes(user_id)[TASKS.index(task)].provenance

    def _route_all(self, user_id: str | None) -> tuple[_Route, ...]:
        routes = []
        for task in TASKS:
            plan = self._plans[task]
            decision = (task, *self._decide(plan, user_id))
            route = self._shared_routes.get(decision)
            if route is None:  # users routed alike share one object: fewer cache misses
                route = self._shared_routes.setdefault(decision, _make_route(plan, *decision[1:]))
            routes.append(route)
        return tuple(routes)

    @staticmethod
    def _decide(
        plan: _TaskPlan, user_id: str | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """``(version, variant, experiment_id, reason)``: a reason means the rules answer."""
        if plan.reason is not None:
            return None, None, None, plan.reason
        version, variant, experiment_id = plan.active, None, None
        if user_id is not None:
            for eid, variants, weights, coverage, salt in plan.experiments:
                variant = assign_variant(user_id, eid, weights, coverage, salt=salt)
                if variant is not None:
                    version, experiment_id = variants[variant], eid
                    break
        reason = None
        if variant is not None:
            reason = "variant_rules" if version is None else None
        elif version is None:
            reason = "no_model"
        elif user_id is None:
            reason = None if plan.rollout > 0.0 else "rollout"
        else:
            salt = ROLLOUT_SALT_PREFIX + plan.task
            in_rollout = assign_variant(user_id, salt, {version: 1.0}, plan.rollout) is not None
            version, reason = (version, None) if in_rollout else (None, "rollout")
        if reason is None and version is not None:
            reason = plan.static_failures.get(version)
        return version, variant, experiment_id, reason

    # --- answering ---------------------------------------------------------------------------

    def predict(
        self, features: Any, user_id: str | None = None, job_id: str | None = None
    ) -> Prediction:
        """Mastering parameters and preset of a mix.

        Args:
            features: The mix's feature vector, ``len(FEATURE_NAMES)`` numbers (1-D, or
                shape ``(1, n)``).
            user_id: Routes the user to a model version (A/B and rollout); recorded.
            job_id: Recorded with the metrics.

        Raises:
            ValueError: If ``features`` has the wrong shape or is not numeric.
        """
        x, valid = _checked_row(features, self._n_features, "features")
        feed = {_FEATURES_INPUT: x}  # one feed for both models: they share the input name
        master_route, preset_route, _ = self._routes(user_id)
        # Hot path: every line here is paid on each request. Lengths are checked before
        # the zips (zip's strict keyword alone costs 0.2 µs), lists beat numpy at 8 values.
        clock = time.perf_counter
        start = clock()
        values, master = self._run(master_route, feed, valid)
        if values is None:
            values = self.rules.master_params(x)[0].tolist()
        elif not (all(map(le, _LOWS, values)) and all(map(le, values, _HIGHS))):
            bounded = zip(values, _LOWS, _HIGHS)  # noqa: B905
            values = [lo if v < lo else hi if v > hi else v for v, lo, hi in bounded]
        params = MappingProxyType(dict(zip(MASTER_PARAM_NAMES, values)))  # noqa: B905
        middle = clock()
        values, preset_prov = self._run(preset_route, feed, valid)
        if values is not None:
            if min(values) < 0.0:
                values = [v if v > 0.0 else 0.0 for v in values]
            total = sum(values)
            if total > 0.0:
                if abs(total - 1.0) > 1e-6:
                    values = [v / total for v in values]
            else:
                values, preset_prov = None, preset_prov.fallback("bad_output")
        if values is None:
            values = self.rules.preset_scores(x)[0].tolist()
        preset = PRESETS[values.index(max(values))]
        scores = MappingProxyType(dict(zip(PRESETS, values)))  # noqa: B905
        end = clock()
        self.metrics.record_lazy(
            _prediction_records,
            (time.time(), user_id, job_id, master, middle - start, params, preset_prov,
             end - middle, preset, scores),
            2,
        )  # fmt: skip
        return Prediction(params, preset, scores, master, preset_prov)

    def align(
        self,
        vocal: np.ndarray,
        instrumental: np.ndarray,
        sr: int,
        user_id: str | None = None,
        job_id: str | None = None,
    ) -> AlignResult:
        """Offset of the vocal against the instrumental and the confidence in it.

        The offset comes from the rule-based aligner
        (:func:`mixai_inference.alignment.estimate_alignment`); the confidence from the
        ``align_conf`` model on the alignment features, or from the rules.

        Raises:
            AudioError: If the aligner rejects the audio.
        """
        from mixai_inference.alignment import estimate_alignment

        alignment = estimate_alignment(vocal, instrumental, sr)
        return self.align_from_features(
            alignment.offset_ms, alignment.features, user_id=user_id, job_id=job_id
        )

    def align_from_features(
        self,
        offset_ms: float,
        features: Any,
        user_id: str | None = None,
        job_id: str | None = None,
    ) -> AlignResult:
        """:meth:`align` for an alignment already estimated (e.g. stored features).

        Raises:
            ValueError: If ``features`` is not ``len(ALIGNMENT_FEATURE_NAMES)`` numbers.
        """
        a, valid = _checked_row(features, self._n_align, "alignment features")
        start = time.perf_counter()
        values, prov = self._run(self._routes(user_id)[2], {_ALIGN_INPUT: a}, valid)
        if values is None:
            confidence = float(self.rules.align_confidence(a)[0])
        else:
            confidence = min(max(values[0], 0.0), 1.0)
        offset = float(offset_ms)
        prediction = {"offset_ms": offset, "confidence": confidence}
        seconds = time.perf_counter() - start
        self.metrics.record(
            _metric(time.time(), ALIGN_CONF, prov, seconds, user_id, job_id, prediction)
        )
        return AlignResult(offset, confidence, prov)

    def _run(
        self, route: _Route, feed: dict[str, np.ndarray], valid: bool
    ) -> tuple[list[float] | None, Provenance]:
        """The routed model's output row, or ``None`` and the rules' provenance."""
        prov = route.provenance
        if route.key is None:
            return None, prov
        if not valid:
            return None, prov.fallback("invalid_features")
        output_names, shape = route.outputs
        try:
            out = self._sessions.run(route.key, output_names, feed)[0]
        except _LoadFailure as failure:
            return None, prov.fallback(failure.reason)
        except _RunError as exc:
            self._warn_once(route.key, "runtime_error", str(exc))
            return None, prov.fallback("runtime_error")
        if out.shape != shape:
            return None, prov.fallback("bad_output")
        values: list[float] = out[0].tolist()
        # float32 values cannot overflow a float64 sum: it is finite iff every value is
        if not math.isfinite(sum(values)):
            return None, prov.fallback("non_finite_output")
        return values, prov

    def _warn_once(self, key: _Key, reason: str, message: str) -> None:
        if (*key, reason) not in self._warned:
            self._warned.add((*key, reason))
            logger.warning("%s %s answers from the rules (%s): %s", *key, reason, message)

    # --- loading -----------------------------------------------------------------------------

    def _options(self) -> onnxruntime.SessionOptions:
        import onnxruntime as ort

        if self._session_options is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            options.log_severity_level = 3  # errors only; failures are reported as reasons
            self._session_options = options
        return self._session_options

    def _load_session(self, key: _Key) -> onnxruntime.InferenceSession:
        """Read, verify, load and warm one model; any problem raises :class:`_LoadFailure`."""
        try:
            return self._load_verified(*key)
        except _LoadFailure as failure:
            self._warn_once(key, failure.reason, str(failure))
            raise

    def _load_verified(self, task: str, version: str) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        plan = self._plans[task]
        path = plan.files[version]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _LoadFailure("file_missing", str(path)) from None
        except OSError as exc:
            raise _LoadFailure("load_error", f"{path}: {exc}") from None
        if sha256_bytes(data) != plan.sha256[version]:
            raise _LoadFailure("sha256_mismatch", str(path))
        try:
            session = ort.InferenceSession(
                data, sess_options=self._options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise _LoadFailure("load_error", f"{path}: {exc}") from None
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get("feature_schema_version") != self.feature_schema_version:
            raise _LoadFailure(
                "schema_mismatch",
                f"model schema {meta.get('feature_schema_version')!r}, "
                f"package schema {self.feature_schema_version!r}",
            )
        if (meta.get("task"), meta.get("version")) != (task, version):
            raise _LoadFailure(
                "metadata_mismatch",
                f"metadata says {meta.get('task')!r} {meta.get('version')!r}",
            )
        io = plan.io
        inputs = session.get_inputs()
        outputs = {o.name: o for o in session.get_outputs()}
        if (
            len(inputs) != 1
            or inputs[0].name != io.input_name
            or inputs[0].shape[-1:] != [plan.input_dim]
            or io.output_name not in outputs
        ):
            raise _LoadFailure(
                "io_mismatch",
                f"graph {[(i.name, i.shape) for i in inputs]} -> {list(outputs)}, expected "
                f"{io.input_name!r} [batch, {plan.input_dim}] -> {io.output_name!r}",
            )
        try:
            warm = session.run(
                [io.output_name], {io.input_name: np.zeros((1, plan.input_dim), np.float32)}
            )[0]
        except Exception as exc:
            raise _LoadFailure("load_error", f"warm-up run failed: {exc}") from None
        if warm.shape != (1, io.output_dim):
            raise _LoadFailure(
                "io_mismatch", f"output shape {warm.shape}, expected (1, {io.output_dim})"
            )
        return session


def _metric(
    now: float,
    task: str,
    prov: Provenance,
    seconds: float,
    user_id: str | None,
    job_id: str | None,
    prediction: Mapping[str, Any],
) -> MetricRecord:
    return MetricRecord(
        now,
        task,
        prov.model_version,
        prov.variant,
        prov.source,
        seconds * 1000.0,
        prov.reason not in FAILURE_REASONS,
        prov.reason,
        user_id,
        job_id,
        prediction,
    )


def _make_route(
    plan: _TaskPlan,
    version: str | None,
    variant: str | None,
    experiment_id: str | None,
    reason: str | None,
) -> _Route:
    if reason is not None or version is None:
        return _Route(Provenance("rules", version, variant, experiment_id, reason))
    io = plan.io
    return _Route(
        Provenance("ml", version, variant, experiment_id, None),
        key=(plan.task, version),
        outputs=([io.output_name], (1, io.output_dim)),
    )


def _prediction_records(payload: tuple[Any, ...]) -> tuple[MetricRecord, MetricRecord]:
    """The two ``model_metrics`` rows of one :meth:`Predictor.predict` call."""
    now, user_id, job_id, master, master_s, params, preset_prov, preset_s, preset, scores = payload
    return (
        _metric(now, MASTER_REG, master, master_s, user_id, job_id, params),
        _metric(now, PRESET_CLS, preset_prov, preset_s, user_id, job_id,
                {"preset": preset, "scores": scores}),
    )  # fmt: skip


def _checked_row(values: Any, width: int, what: str) -> tuple[np.ndarray, bool]:
    """``values`` as a float32 ``(1, width)`` row, and whether every value is finite.

    Raises:
        ValueError: If ``values`` is not ``width`` numbers.
    """
    row = np.ascontiguousarray(values, dtype=np.float32)
    if row.shape == (width,):
        flat, row = row, row.reshape(1, width)
    elif row.shape == (1, width):
        flat = row[0]
    else:
        raise ValueError(
            f"{what} must be {width} numbers (shape ({width},) or (1, {width})), "
            f"got shape {row.shape}"
        )
    # x·x is finite iff every value is, unless it overflows: only then check one by one
    return row, math.isfinite(flat.dot(flat)) or bool(np.isfinite(flat).all())


def _package_schema_version() -> str:
    from mixai_inference.features import FEATURE_SCHEMA_VERSION

    return str(FEATURE_SCHEMA_VERSION)
