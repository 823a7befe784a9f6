"""A thread-safe LRU cache of onnxruntime sessions, and the verified load of one model.

Guarantees (see :class:`SessionCache`): at most ``capacity`` sessions exist at once; a
session is loaded by one thread while the others wait for it; a failed load is
remembered and not retried. :func:`load_verified` reads a model file and checks it
(SHA-256 of the bytes loaded, ``metadata_props`` task / version / feature schema, I/O
names and widths) and warms it with one run before it is used; any problem raises
:class:`LoadFailure` with a reason code of :data:`mixai_inference.results.REASONS`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np

from mixai_inference.bundle import Manifest, sha256_bytes, sha256_file
from mixai_inference.tasks import task_spec

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)


class RunError(Exception):
    """``session.run`` failed (the message of onnxruntime's error, without its frames)."""


class LoadFailure(Exception):
    """A model cannot be loaded or used; ``reason`` is its reason code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class SessionKey(NamedTuple):
    """What a session serves."""

    task: str
    version: str


class BoundSession:
    """A verified model whose input and output are bound once per thread.

    :meth:`run` copies a row into the calling thread's bound input buffer and reads the
    output from its bound output buffer: onnxruntime's I/O binding skips the per-call
    conversion of a feed and the allocation of the output, about 1 µs of the ~9 µs a small
    model takes. The buffers are per thread because a run writes them; they go with the
    object (and so does the session: each binding holds it).
    """

    def __init__(
        self, session: onnxruntime.InferenceSession, check: ModelCheck, output: np.ndarray
    ) -> None:
        self.session = session
        self._check = check
        self._output = output  # the warm-up run's: its dtype and shape are the output's
        self._local = threading.local()

    def run(self, row: np.ndarray) -> list[float]:
        """The output row for one input row of shape ``(1, input_dim)``."""
        try:
            run, binding, source, target = self._local.bound
        except AttributeError:
            run, binding, source, target = self._local.bound = self._bind()
        source[...] = row
        run(binding, None)
        values: list[float] = target.tolist()[0]
        return values

    def _bind(self) -> tuple[Callable[[Any, Any], None], Any, np.ndarray, np.ndarray]:
        session, check = self.session, self._check
        source = np.zeros((1, check.input_dim), np.float32)
        target = np.zeros_like(self._output)
        binding = session.io_binding()  # to the buffers' memory: a run reads and writes them
        for bind, name, array in (
            (binding.bind_input, check.input_name, source),
            (binding.bind_output, check.output_name, target),
        ):
            bind(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        # the C++ methods the public run_with_iobinding wraps: 0.1 µs less per run; the
        # bound method holds the session, so the session lives as long as a binding does
        return session._sess.run_with_iobinding, binding._iobinding, source, target


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

    A cached session runs with its I/O bound (:class:`BoundSession`).
    """

    def __init__(self, capacity: int, load: Callable[[SessionKey], BoundSession]):
        if capacity < 1:
            raise ValueError(f"max_sessions must be at least 1, got {capacity}")
        self.capacity = capacity
        self._load = load
        # key -> recency stamp
        self._sessions: dict[SessionKey, BoundSession] = {}
        self._stamps: dict[SessionKey, int] = {}
        self._tick = itertools.count()
        self._loading: set[SessionKey] = set()
        self._failures: dict[SessionKey, str] = {}  # reasons only: no traceback may keep a session
        # reentrant: evicting an idle session frees it at once, and its finalizer reports
        # that under the lock the evicting thread holds
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.alive = 0
        self._evicted_alive = 0  # evicted sessions that are still running somewhere
        self.loads = 0
        self.evictions = 0

    def run(self, key: SessionKey, row: np.ndarray) -> list[float]:
        """The output row of the session of ``key`` for one input row (:meth:`BoundSession.run`).

        Raises:
            LoadFailure: If the session cannot be loaded (now or before).
        """
        entry = self._sessions.get(key)
        if entry is None:
            entry = self._acquire(key)
        self._stamps[key] = next(self._tick)
        try:
            return entry.run(row)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            del entry
        # raised outside the handler: the original traceback (whose frames hold the
        # session) is freed now, so an evicted session is freed when its run ends
        raise RunError(error)

    def load(self, key: SessionKey) -> None:
        """Make sure the session of ``key`` is loaded (and warmed).

        Raises:
            LoadFailure: If it cannot be loaded.
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

    def _acquire(self, key: SessionKey) -> BoundSession:
        """The slow path: wait for a load elsewhere or for room, or load the key here."""
        with self._cond:
            while True:
                failure = self._failures.get(key)
                if failure is not None:
                    raise LoadFailure(failure, "failed before")
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
                    raise LoadFailure("load_error", f"no session slot in {_SLOT_WAIT_S} s")
            self._loading.add(key)
            self.alive += 1
        try:
            entry = self._load(key)
        except BaseException as exc:
            with self._cond:
                self._loading.discard(key)
                self.alive -= 1
                if isinstance(exc, LoadFailure):
                    self._failures[key] = exc.reason
                self._cond.notify_all()
            raise
        # through a weak reference: the finalizer registry must not keep the cache alive
        weakref.finalize(entry.session, _report_freed, weakref.ref(self)).atexit = False
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


@dataclass(frozen=True)
class ModelCheck:
    """What a model file must be, from the manifest and the package."""

    path: Path
    sha256: str
    feature_schema_version: str
    input_name: str
    input_dim: int
    output_name: str
    output_dim: int


def session_options() -> onnxruntime.SessionOptions:
    """One intra-op and one inter-op thread, sequential, no spinning: workers scale by process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; failures are reported as reasons
    return options


def load_verified(
    key: SessionKey, check: ModelCheck, options: onnxruntime.SessionOptions
) -> BoundSession:
    """Read, verify, load and warm one model.

    Raises:
        LoadFailure: With the reason code of the first problem found.
    """
    import onnxruntime as ort

    path = check.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LoadFailure("file_missing", str(path)) from None
    except OSError as exc:
        raise LoadFailure("load_error", f"{path}: {exc}") from None
    if sha256_bytes(data) != check.sha256:
        raise LoadFailure("sha256_mismatch", str(path))
    try:
        session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise LoadFailure("load_error", f"{path}: {exc}") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("feature_schema_version") != check.feature_schema_version:
        raise LoadFailure(
            "schema_mismatch",
            f"model schema {meta.get('feature_schema_version')!r}, "
            f"package schema {check.feature_schema_version!r}",
        )
    if (meta.get("task"), meta.get("version")) != key:
        raise LoadFailure(
            "metadata_mismatch", f"metadata says {meta.get('task')!r} {meta.get('version')!r}"
        )
    inputs = session.get_inputs()
    outputs = {o.name: o for o in session.get_outputs()}
    if (
        len(inputs) != 1
        or inputs[0].name != check.input_name
        or inputs[0].shape[-1:] != [check.input_dim]
        or check.output_name not in outputs
    ):
        raise LoadFailure(
            "io_mismatch",
            f"graph {[(i.name, i.shape) for i in inputs]} -> {list(outputs)}, expected "
            f"{check.input_name!r} [batch, {check.input_dim}] -> {check.output_name!r}",
        )
    try:
        warm = session.run(
            [check.output_name],
            {check.input_name: np.zeros((1, check.input_dim), np.float32)},
        )[0]
    except Exception as exc:
        raise LoadFailure("load_error", f"warm-up run failed: {exc}") from None
    if warm.shape != (1, check.output_dim):
        raise LoadFailure(
            "io_mismatch", f"output shape {warm.shape}, expected (1, {check.output_dim})"
        )
    return BoundSession(session, check, warm)


def check_bundle(
    manifest: Manifest | None,
    bundle_dir: Path | None,
    input_dims: Mapping[str, int],
    feature_schema_version: str,
) -> tuple[dict[SessionKey, ModelCheck], dict[SessionKey, str]]:
    """Every shipped model's load check, and the versions unusable before any load
    (``schema_mismatch``, ``file_missing``, ``sha256_mismatch``; each logged once).

    Reads every model file once (its SHA-256): a predictor does it when it opens a bundle,
    and control changes reuse the result.
    """
    checks: dict[SessionKey, ModelCheck] = {}
    failures: dict[SessionKey, str] = {}
    if manifest is None or bundle_dir is None:
        return checks, failures
    for task, entry in manifest.tasks.items():
        spec = task_spec(task)
        for version, model in entry.models.items():
            key = SessionKey(task, version)
            checks[key] = check = ModelCheck(
                path=bundle_dir / model.file,
                sha256=model.sha256,
                feature_schema_version=feature_schema_version,
                input_name=spec.input_tensor,
                input_dim=input_dims[task],
                output_name=spec.output_tensor,
                output_dim=len(spec.outputs),
            )
            if (model.feature_schema_version, model.input_dim) != (
                feature_schema_version,
                input_dims[task],
            ):
                failures[key] = "schema_mismatch"
            elif not check.path.is_file():
                failures[key] = "file_missing"
            elif sha256_file(check.path) != model.sha256:
                failures[key] = "sha256_mismatch"
    for key, failure in failures.items():
        logger.warning("%s %s answers from the rules: %s", *key, failure)
    return checks, failures
