"""Per-user adapters: a known user's answer moved toward their own taste (docs/models.md).

A personalised task (:attr:`TaskSpec.personalized <mixai_inference.tasks.TaskSpec.personalized>`)
may have, for each user with labelled jobs, one number per model output, learned from the
user's jobs and shrunk toward the population when they are few:

* ``regression``: an offset in label units, added to the model's output (then clipped into
  the ranges);
* ``classification``: the log-ratio of the user's prior of each class to the population's,
  added to the log of the model's probabilities (then renormalised): Bayes' rule with the
  user's prior instead of the population's.

The store is one JSON file in the bundle, listed with its SHA-256 in the manifest
(``user_adapters``); reading it runs no code. Each task's adapters were fitted against one
model version, and adjust only that version's answers::

    {
      "format_version": 1,
      "created_at": "2026-11-01T03:00:00Z",
      "tasks": {
        "master_reg": {
          "model_version": "20261101030000-a1b2c3d4",
          "outputs": ["target_lufs", ...],
          "users": {"U000123": [0.41, -0.2, ...]}
        }
      }
    }

Unknown users, users without adapters, other versions and the rules' answers are unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mixai_inference._manifest_rules import is_finite_number
from mixai_inference.tasks import TaskSpec, task_spec

if TYPE_CHECKING:
    from mixai_inference.bundle import Manifest
    from mixai_inference.results import Provenance

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
ADAPTERS_FILE: Final = "user_adapters.json"
"""The store's file name in a bundle."""

Adjustments = Mapping[str, tuple[str, tuple[float, ...]]]
"""A user's adapters: task → (the model version they adjust, their numbers)."""


class AdapterError(ValueError):
    """A store of user adapters that cannot be read or breaks the format."""


@dataclass(frozen=True)
class AdapterFile:
    """Where a bundle keeps its store: the manifest's ``user_adapters`` entry."""

    file: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class TaskAdapters:
    """One task's adapters: the model version they adjust and each user's numbers."""

    model_version: str
    users: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class UserAdapters:
    """The store: per personalised task its :class:`TaskAdapters`."""

    tasks: Mapping[str, TaskAdapters]
    created_at: str | None = None

    @functools.cached_property
    def users(self) -> frozenset[str]:
        """Every user with an adapter for some task."""
        return frozenset().union(*(entry.users for entry in self.tasks.values()))

    def for_user(self, user_id: str | None) -> dict[str, tuple[str, tuple[float, ...]]]:
        """``task -> (model_version, numbers)`` of the tasks that have adapters for the user."""
        if user_id not in self.users:  # most requests: one set lookup
            return {}
        return {
            task: (entry.model_version, entry.users[user_id])
            for task, entry in self.tasks.items()
            if user_id in entry.users
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the store file."""
        return {
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "tasks": {
                task: {
                    "model_version": entry.model_version,
                    "outputs": list(task_spec(task).outputs),
                    "users": {user: list(values) for user, values in sorted(entry.users.items())},
                }
                for task, entry in self.tasks.items()
            },
        }

    def to_bytes(self) -> bytes:
        """The store file's content (UTF-8 JSON, users sorted)."""
        return (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode("utf-8")

    def without(self, users: set[str]) -> UserAdapters:
        """The store without ``users``' adapters (what the purge keeps)."""
        tasks = {
            task: TaskAdapters(
                entry.model_version,
                {user: values for user, values in entry.users.items() if user not in users},
            )
            for task, entry in self.tasks.items()
        }
        return UserAdapters(tasks, self.created_at)

    @classmethod
    def from_json(cls, data: Any) -> UserAdapters:
        """Parse and validate the JSON object of a store file.

        Raises:
            AdapterError: If a field is missing, of the wrong type, not finite, or a task is
                unknown, not personalised or has adapters of the wrong length.
        """
        if not isinstance(data, dict):
            raise AdapterError("the store must be a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise AdapterError(
                f"format_version {version!r} is not one this package reads (up to "
                f"{FORMAT_VERSION}); upgrade mixai-inference or export the bundle again"
            )
        raw_tasks = data.get("tasks")
        if not isinstance(raw_tasks, dict):
            raise AdapterError("tasks: expected an object")
        tasks = {task: _task_from_json(task, raw) for task, raw in raw_tasks.items()}
        created_at = data.get("created_at")
        return cls(tasks, created_at if isinstance(created_at, str) else None)


def _task_from_json(task: str, raw: Any) -> TaskAdapters:
    try:
        spec = task_spec(task)
    except ValueError as error:
        raise AdapterError(str(error)) from None
    if not spec.personalized:
        raise AdapterError(f"tasks.{task}: the task is not personalised")
    if not isinstance(raw, dict) or not isinstance(raw.get("model_version"), str):
        raise AdapterError(f"tasks.{task}: expected an object with a model_version")
    if raw.get("outputs") != list(spec.outputs):
        raise AdapterError(f"tasks.{task}.outputs must be {list(spec.outputs)}")
    users = raw.get("users")
    if not isinstance(users, dict):
        raise AdapterError(f"tasks.{task}.users: expected an object")
    width = len(spec.outputs)
    parsed = {}
    for user, values in users.items():
        if (
            not isinstance(values, list)
            or len(values) != width
            or not all(is_finite_number(value) for value in values)
        ):
            raise AdapterError(f"tasks.{task}.users.{user}: expected {width} finite numbers")
        parsed[user] = tuple(float(value) for value in values)
    return TaskAdapters(raw["model_version"], parsed)


def adjust(spec: TaskSpec, values: Sequence[float], numbers: Sequence[float]) -> list[float]:
    """A model's output row adjusted by a user's adapter numbers, before
    :meth:`TaskSpec.finish <mixai_inference.tasks.TaskSpec.finish>` (which clips a
    regression and renormalises a classification).

    Args:
        spec: A personalised task.
        values: The model's output row (label units, or class probabilities).
        numbers: The user's offsets (regression) or log prior ratios (classification).
    """
    if spec.kind == "regression":
        return [value + number for value, number in zip(values, numbers, strict=True)]
    return [value * math.exp(number) for value, number in zip(values, numbers, strict=True)]


def bundle_adapters(
    manifest: Manifest | None, bundle_dir: Path | None
) -> tuple[UserAdapters | None, str | None]:
    """The store a bundle's manifest lists, checked against its SHA-256.

    Returns:
        ``(store, None)``; ``(None, None)`` when the bundle has no store; or, logged as a
        warning, ``(None, why it is unusable)``: every user then gets the population's answers.
    """
    entry = manifest.user_adapters if manifest else None
    if entry is None or bundle_dir is None:
        return None, None
    path = bundle_dir / entry.file
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise AdapterError("its sha256 differs from the manifest's")
        return UserAdapters.from_json(json.loads(data)), None
    except (OSError, ValueError) as error:  # AdapterError and JSON errors are ValueErrors
        problem = f"user adapters {path} unusable, population answers only: {error}"
        logger.warning(problem)
        return None, problem


def personalised(
    spec: TaskSpec,
    finished: list[float],
    provenance: Provenance,
    adapters: Adjustments,
) -> tuple[list[float], Provenance]:
    """A model's finished answer (:meth:`TaskSpec.finish`) adjusted by the user's adapter for
    its task and version when there is one (:meth:`UserAdapters.for_user`), and finished
    again; unchanged otherwise, or when the adjusted answer is unusable."""
    adapter = adapters.get(spec.name)
    if adapter is None or adapter[0] != provenance.model_version or provenance.source != "ml":
        return finished, provenance
    adjusted = spec.finish(adjust(spec, finished, adapter[1]))
    return (finished, provenance) if adjusted is None else (adjusted, provenance.with_adapter())
