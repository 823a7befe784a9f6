"""The production predictor: ONNX models from a bundle, with the rules as the safety net.

:meth:`Predictor.from_bundle` reads a bundle (see :mod:`mixai_inference.bundle`) and
answers every registered task (:mod:`mixai_inference.tasks`): :meth:`~Predictor.predict`
the tasks that read a mix's features (mastering parameters and preset), and
:meth:`~Predictor.align` those that read the alignment features (the confidence in the
vocal offset). Every answer says where it came from: ``source`` (``ml`` or ``rules``), the
model version and A/B variant it was routed to, and the reason when the rules answered.

Guarantees:

* **A valid input never gets an exception.** Any model problem (missing, corrupt or
  tampered file, schema mismatch, load or runtime error, wrong output shape, non-finite
  output) makes that task answer from its rule with a reason code
  (:data:`~mixai_inference.results.REASONS`). A missing or unreadable bundle gives a
  predictor that answers everything from the rules (reason ``bundle_unavailable``):
  production keeps answering, and ``from_bundle`` does not raise. Invalid input is the
  caller's bug: features of the wrong length raise :class:`ValueError`; non-finite
  features are answered by the rules (which replace non-finite values by typical ones)
  with reason ``invalid_features``.
* **At most** ``max_sessions`` **onnxruntime sessions exist** (default 5), in the
  thread-safe LRU cache of :mod:`mixai_inference.sessions`, each verified and warmed
  before use.
* **Routing** (per task; :func:`mixai_inference.routing.decide`, ``docs/deployment.md``):
  experiments first, then the active version's rollout. Decisions are cached per user (LRU).
* **Every answer is recorded** in the metrics sink (one ``model_metrics`` row per task).
* **Every answer is scored** against the model's training inputs (``ood_score``,
  :mod:`mixai_inference.ood`) unless the task's policy is ``off``; under ``fallback`` an
  out-of-distribution input is answered by the rules (``out_of_distribution``).
* **Known users get their adapter** (:mod:`mixai_inference.adapters`) on model answers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mixai_inference.adapters import Adjustments, bundle_adapters, personalised
from mixai_inference.bundle import BundleError, Manifest, read_manifest
from mixai_inference.control import Control
from mixai_inference.features import FEATURE_SCHEMA_VERSION, all_finite, feature_row
from mixai_inference.flags import Flags
from mixai_inference.guards import Guards
from mixai_inference.metrics import MetricsSink
from mixai_inference.results import (
    FAILURE_REASONS,
    REASONS,
    AlignResult,
    Answer,
    Prediction,
    Provenance,
    answer_records,
)
from mixai_inference.route_table import Route, RouteTable, route_table
from mixai_inference.routing import Decision, TaskPlan, plan_task
from mixai_inference.rules import Rules
from mixai_inference.sessions import (
    BoundSession,
    LoadFailure,
    RunError,
    SessionCache,
    SessionKey,
    check_bundle,
    load_verified,
    session_options,
)
from mixai_inference.tasks import Source, TaskSpec, task_specs

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

__all__ = ["FAILURE_REASONS", "REASONS", "AlignResult", "Prediction", "Predictor", "Provenance"]


class _Served(NamedTuple):
    """A task as the hot path serves it."""

    spec: TaskSpec
    position: int
    """Its position in a user's routes."""
    columns: np.ndarray | None
    """Positions of the model's inputs in the source vector; ``None``: all of it."""


class Predictor:
    """Answers every registered task from a bundle's ONNX models, falling back to the rules.

    Build one with :meth:`from_bundle` (or :meth:`rules_only`) and share it between
    threads; see the module documentation for the guarantees.
    """

    def __init__(
        self,
        manifest: Manifest | None,
        bundle_dir: Path | None,
        *,
        flags: Flags | None = None,
        control: Control | None = None,
        metrics_sink: MetricsSink,
        rules: Rules,
        feature_schema_version: str,
        unavailable_reason: str | None = None,
        bundle_error: str | None = None,
        max_sessions: int = 5,
        route_cache_size: int = 65_536,
        ood_policy: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.adapters, self.adapters_error = bundle_adapters(manifest, bundle_dir)
        self.bundle_dir = bundle_dir
        self.bundle_error = bundle_error
        self.metrics = metrics_sink
        self.rules = rules
        self.feature_schema_version = feature_schema_version
        self._unavailable = unavailable_reason
        self._route_cache_size = route_cache_size
        self._sessions = SessionCache(max_sessions, self._load_session)
        self._session_options: onnxruntime.SessionOptions | None = None
        self._warned: set[tuple[str, str, str]] = set()
        self._width = {source: len(rules.source_names(source)) for source in ("mix", "alignment")}
        served: dict[Source, list[_Served]] = {"mix": [], "alignment": []}
        self._input_dims: dict[str, int] = {}
        for index, spec in enumerate(task_specs()):
            names = rules.source_names(spec.source)
            positions = spec.positions(names)
            columns = None if positions is None else np.array(positions)
            served[spec.source].append(_Served(spec, index, columns))
            self._input_dims[spec.name] = len(spec.input_names(names))
        self._served = {source: tuple(tasks) for source, tasks in served.items()}
        self._position = {s.spec.name: s.position for tasks in self._served.values() for s in tasks}
        self._checks, self._file_failures = check_bundle(
            manifest, bundle_dir, self._input_dims, feature_schema_version
        )
        # each model's training reference and each task's out-of-distribution policy
        self.guards = Guards(manifest, (spec.name for spec in task_specs()), ood_policy)
        if manifest and bundle_dir and manifest.feature_schema_version == feature_schema_version:
            for spec in task_specs():
                entry = manifest.tasks.get(spec.name)
                names = spec.input_names(rules.source_names(spec.source))
                failures = self.guards.load(spec, entry, bundle_dir, names) if entry else {}
                for version, reason in failures.items():  # not the bundle that was exported
                    self._file_failures.setdefault(SessionKey(spec.name, version), reason)
        self._state = self._build_state(control or Control.from_manifest(manifest, flags))

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        *,
        flags: Flags | None = None,
        control: Control | None = None,
        metrics_sink: MetricsSink | None = None,
        max_sessions: int = 5,
        preload: bool = True,
        route_cache_size: int = 65_536,
        rules: Rules | None = None,
        feature_schema_version: str | None = None,
        ood_policy: str | None = None,
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
            control: The whole run-time control (flags, versions, experiments; see
                :mod:`mixai_inference.control`); default: the manifest's, with ``flags``.
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
            ood_policy: The out-of-distribution policy of every task, instead of the
                bundle's (:class:`~mixai_inference.guards.Guards`).
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
            flags=flags,
            control=control,
            metrics_sink=metrics_sink or MetricsSink.from_env(),
            rules=rules or Rules.default(),
            feature_schema_version=feature_schema_version or FEATURE_SCHEMA_VERSION,
            unavailable_reason=None if manifest else "bundle_unavailable",
            bundle_error=error,
            max_sessions=max_sessions,
            route_cache_size=route_cache_size,
            ood_policy=ood_policy,
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
            flags=flags,
            metrics_sink=metrics_sink or MetricsSink.from_env(),
            rules=rules or Rules.default(),
            feature_schema_version=FEATURE_SCHEMA_VERSION,
            unavailable_reason="no_bundle",
        )

    def _plan(self, task: str, control: Control) -> TaskPlan:
        schema = self.manifest.feature_schema_version if self.manifest else None
        # an unusable bundle outranks the flags: its flags are lost with it
        reason = self._unavailable or (None if control.flags.ml_enabled(task) else "disabled")
        if reason is None and schema != self.feature_schema_version:
            reason = "no_model" if schema is None else "schema_mismatch"
        shipped = {
            key.version: self._file_failures.get(key) for key in self._checks if key.task == task
        }
        return plan_task(task, control, reason, shipped)

    def _build_state(self, control: Control) -> RouteTable:
        plans = {spec.name: self._plan(spec.name, control) for spec in task_specs()}
        return route_table(control, plans, self._make_route, self._route_cache_size)

    @property
    def control(self) -> Control:
        """The run-time control in force (flags, versions, rollout, experiments)."""
        return self._state.control

    @property
    def flags(self) -> Flags:
        """The effective feature flags."""
        return self._state.control.flags

    def set_control(self, control: Control, *, preload: bool = True) -> None:
        """Serve ``control`` from now on, without rebuilding the sessions.

        The new routing is built (and, with ``preload``, the models it routes to are loaded
        and warmed) first, then swapped in with one assignment: a request sees the old
        control or the new one, never a mix; the per-user routing cache starts afresh.
        """
        state = self._build_state(control)
        if preload:
            self._preload(state)
        self._state = state

    def routed_versions(self) -> dict[str, set[str]]:
        """Per task whose model may answer, the versions the control in force routes to
        (active and experiments), usable or not."""
        return {task: plan.versions() for task, plan in self._state.plans.items()}

    def preload(self) -> None:
        """Load and warm every model the control in force routes to (failures are
        remembered and answered by the rules)."""
        self._preload(self._state)

    def _preload(self, state: RouteTable) -> None:
        for plan in state.plans.values():
            for version in sorted(plan.versions() - set(plan.static_failures)):
                with contextlib.suppress(LoadFailure):
                    self._sessions.load(SessionKey(plan.task, version))

    def load_failures(self) -> dict[SessionKey, str]:
        """Models that could not be used: file checks and remembered load failures."""
        failures = dict(self._file_failures)
        for key, reason in self._sessions.info().get("failures", {}).items():
            failures[SessionKey(*key)] = reason
        return failures

    def cache_info(self) -> dict[str, Any]:
        """The session cache: loaded ``(task, version)`` keys, loads, evictions, failures."""
        return self._sessions.info()

    def close(self) -> None:
        """Flush the metrics sink's JSONL writer."""
        self.metrics.close()

    # --- routing -----------------------------------------------------------------------------

    def route(self, task: str, user_id: str | None = None) -> Provenance:
        """Where ``user_id``'s requests for ``task`` go (before any model runs)."""
        return self._state.routes(user_id)[self._position[task]].provenance

    def _make_route(self, task: str, decision: Decision) -> Route:
        version, variant, experiment_id, reason = decision
        guard = self.guards.of(task, version)
        if reason is not None or version is None:
            return Route(Provenance("rules", version, variant, experiment_id, reason), guard)
        key = SessionKey(task, version)
        return Route(Provenance("ml", version, variant, experiment_id, None), guard, key)

    # --- answering ---------------------------------------------------------------------------

    def predict(
        self,
        features: Any,
        user_id: str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
    ) -> Prediction:
        """Every task that reads a mix's features: mastering parameters and preset.

        Args:
            features: The mix's feature vector, ``len(FEATURE_NAMES)`` numbers (1-D, or
                shape ``(1, n)``).
            user_id: Routes the user to a model version (A/B and rollout); recorded.
            job_id: Recorded with the metrics.
            request_id: Recorded with the metrics: with the task, the key of the answer's
                ``model_metrics`` row (the service makes one per request).

        Raises:
            ValueError: If ``features`` has the wrong shape or is not numeric.
        """
        return Prediction(self._serve("mix", features, user_id, job_id, request_id, {}))

    def align(
        self,
        vocal: np.ndarray,
        instrumental: np.ndarray,
        sr: int,
        user_id: str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
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
            alignment.offset_ms,
            alignment.features,
            user_id=user_id,
            job_id=job_id,
            request_id=request_id,
        )

    def align_from_features(
        self,
        offset_ms: float,
        features: Any,
        user_id: str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
    ) -> AlignResult:
        """:meth:`align` for an alignment already estimated (e.g. stored features).

        Raises:
            ValueError: If ``features`` is not ``len(ALIGNMENT_FEATURE_NAMES)`` numbers.
        """
        extra = {"offset_ms": float(offset_ms)}
        answers = self._serve("alignment", features, user_id, job_id, request_id, extra)
        return AlignResult(extra["offset_ms"], answers)

    def _serve(
        self,
        source: Source,
        features: Any,
        user_id: str | None,
        job_id: str | None,
        request_id: str | None,
        extra: dict[str, Any],
    ) -> dict[str, Answer]:
        """Answer every task that reads ``source``, and record the answers (with ``extra``)."""
        x = feature_row(features, self._width[source], f"{source} features")
        served, routes = self._served[source], self._state.routes(user_id)
        personal = self.adapters.for_user(user_id) if self.adapters else None
        answers, seconds = self._answer(served, x, routes, personal)
        self.metrics.record_lazy(
            answer_records,
            (time.time(), user_id, job_id, request_id, served, answers, seconds, extra, x, routes),
            len(served),
        )
        return answers

    def _answer(
        self,
        served: tuple[_Served, ...],
        x: np.ndarray,
        routes: tuple[Route, ...],
        personal: Adjustments | None,
    ) -> tuple[dict[str, Answer], tuple[float, ...]]:
        """Each served task's answer, and the seconds each took (the hot path)."""
        answers = {}
        seconds = []
        policies = self.guards.policies
        valid = None  # every feature finite: a finite score of the whole row says so at once
        scorer, score = None, math.nan  # models fitted on the same inputs share one score
        clock = time.perf_counter
        start = clock()
        for spec, position, columns in served:
            row = x if columns is None else x[:, columns]
            route, policy, ood_score = routes[position], policies[spec.name], None
            if route.guard is not None and policy != "off":
                if route.guard.scorer is not scorer:
                    scorer, score = route.guard.scorer, route.guard.scorer.score(row)
                ood_score = score
            if valid is None:
                valid = (columns is None and score < math.inf) or all_finite(x)
            if ood_score is not None:  # finite features that overflow are very far away
                ood_score = min(ood_score, 1e308) if valid else None
            if policy == "fallback" and route.key and ood_score and ood_score > 1.0:
                values, prov = None, route.provenance.fallback("out_of_distribution")
            else:
                values, prov = self._run(spec, route, row, valid)
            if values is not None and personal:
                values, prov = personalised(spec, values, prov, personal)
            if values is None:
                values = spec.rule(self.rules, row)[0].tolist()
            answers[spec.name] = Answer(spec, values, prov, ood_score)
            end = clock()
            seconds.append(end - start)
            start = end
        return answers, tuple(seconds)

    def _run(
        self, spec: TaskSpec, route: Route, row: np.ndarray, valid: bool
    ) -> tuple[list[float] | None, Provenance]:
        """The routed model's output row, finished (:meth:`TaskSpec.finish`), or ``None``
        and the rules' provenance."""
        prov = route.provenance
        if route.key is None:
            return None, prov
        if not valid:
            return None, prov.fallback("invalid_features")
        try:
            values = self._sessions.run(route.key, row)
        except LoadFailure as failure:
            return None, prov.fallback(failure.reason)
        except RunError as exc:
            self._warn_once(route.key, "runtime_error", str(exc))
            return None, prov.fallback("runtime_error")
        # float32 values cannot overflow a float64 sum: it is finite iff every value is
        if not math.isfinite(sum(values)):
            return None, prov.fallback("non_finite_output")
        finished = spec.finish(values)
        if finished is None:
            return None, prov.fallback("bad_output")
        return finished, prov

    def _warn_once(self, key: SessionKey, reason: str, message: str) -> None:
        if (*key, reason) not in self._warned:
            self._warned.add((*key, reason))
            logger.warning("%s %s answers from the rules (%s): %s", *key, reason, message)

    # --- loading -----------------------------------------------------------------------------

    def _load_session(self, key: SessionKey) -> BoundSession:
        """Read, verify, load and warm one model; any problem raises :class:`LoadFailure`."""
        if self._session_options is None:
            self._session_options = session_options()
        try:
            return load_verified(key, self._checks[key], self._session_options)
        except LoadFailure as failure:
            self._warn_once(key, failure.reason, str(failure))
            raise
