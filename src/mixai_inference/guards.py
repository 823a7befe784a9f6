"""A predictor's out-of-distribution guards: each model's training reference and each
task's policy (see :mod:`mixai_inference.ood`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from mixai_inference.bundle import Manifest, TaskEntry, sha256_bytes
from mixai_inference.ood import (
    DEFAULT_POLICY,
    Guard,
    InputReference,
    ReferenceError,
    Scorer,
    check_policy,
    env_policy,
)
from mixai_inference.tasks import TaskSpec

logger = logging.getLogger(__name__)


class Guards:
    """The guards of a bundle's models and the policy of each task.

    A task's policy, most specific first: ``MIXAI_OOD_POLICY`` (an operator's override for
    every task), :meth:`set_policy` (run-time control, e.g. the service's database), the
    bundle's ``ood_policy``, the package default (``flag``).

    Args:
        manifest: The bundle's manifest, if any.
        tasks: The tasks served.
        policy: One policy for every task, set as run-time control.
    """

    def __init__(
        self, manifest: Manifest | None, tasks: Iterable[str], policy: str | None = None
    ) -> None:
        self._bundle = {
            task: entry.ood_policy for task, entry in (manifest.tasks if manifest else {}).items()
        }
        self._tasks = tuple(tasks)
        self._guards: dict[tuple[str, str | None], Guard] = {}
        self._scorers: dict[bytes, Scorer] = {}
        self._control = dict.fromkeys(self._tasks, policy) if policy else {}
        if policy is not None:
            check_policy(policy, "ood_policy")
        self.policies: Mapping[str, str] = self._resolve()
        """Task → its effective policy (read-only; replaced whole by :meth:`set_policy`)."""

    def load(
        self, spec: TaskSpec, entry: TaskEntry, bundle_dir: Path, names: tuple[str, ...]
    ) -> dict[str, str]:
        """Read and verify each shipped model's training reference.

        Args:
            names: The names of the features the task's models read.

        Returns:
            Version → reason, for the references that fail: their models answer from the
            rules, since the bundle is not what was exported.
        """
        failures = {}
        for version, model in entry.models.items():
            if model.reference is None or model.status == "retired":
                continue
            try:
                content = (bundle_dir / model.reference).read_bytes()
            except OSError:
                failures[version] = "file_missing"
                continue
            if sha256_bytes(content) != model.reference_sha256:
                failures[version] = "sha256_mismatch"
                continue
            try:
                reference = InputReference.from_bytes(content)
                if (reference.input_names, reference.output_names) != (names, spec.outputs):
                    raise ReferenceError("its input or output names differ from the model's")
            except ReferenceError as exc:
                logger.warning("%s %s: %s: %s", spec.name, version, model.reference, exc)
                failures[version] = "load_error"
                continue
            self._guards[spec.name, version] = reference.guard(self._scorers)
        active = self._guards.get((spec.name, entry.active_version or ""))
        if active is not None:
            self._guards[spec.name, None] = active
        return failures

    def of(self, task: str, version: str | None) -> Guard | None:
        """The guard of a model version; for ``None`` (the rules answer) the active one's."""
        return self._guards.get((task, version))

    def set_policy(self, task: str, policy: str | None) -> None:
        """Set ``task``'s policy as run-time control (``None``: back to the bundle's).

        Takes effect for the next call; safe while other threads predict.

        Raises:
            ValueError: For an unknown task or policy.
        """
        if task not in self._tasks:
            raise ValueError(f"unknown task {task!r}; expected one of {list(self._tasks)}")
        control = dict(self._control)
        if policy is None:
            control.pop(task, None)
        else:
            control[task] = check_policy(policy)
        self._control = control
        self.policies = self._resolve()

    def _resolve(self) -> Mapping[str, str]:
        pinned = env_policy()
        return MappingProxyType(
            {
                task: pinned or self._control.get(task) or self._bundle.get(task) or DEFAULT_POLICY
                for task in self._tasks
            }
        )
