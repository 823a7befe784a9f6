"""Feature flags (docs/data_contracts.md §1): package defaults, the bundle's, the environment.

- ``enable_cpu_ml`` (``ENABLE_CPU_ML``, default false): the master switch;
- each task's flag (:attr:`TaskSpec.flag <mixai_inference.tasks.TaskSpec.flag>`, default
  true): ``enable_master_regression``, ``enable_preset_recommendation`` and
  ``enable_align_confidence``; the environment variable is the name in capitals.

A task answers from its model only if ``enable_cpu_ml`` **and** its own flag are on;
otherwise it answers from the rules with reason ``disabled``. ``enable_cpu_ml`` is the
master switch, off unless the bundle or the environment turns it on.

Environment values (case and surrounding spaces ignored): ``true``/``1``/``yes``/``on``
and ``false``/``0``/``no``/``off``; an empty variable counts as unset. Any other value
is a configuration mistake: :func:`resolve_flags` raises :class:`ValueError` when
``strict`` and otherwise logs a warning and keeps the bundle's value, so that a typo
never stops a worker from answering (the predictor resolves non-strictly; the
effective flags are on ``Predictor.flags`` and in the CLI's summary).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Final

from mixai_inference.tasks import MASTER_FLAG, flag_names, task_spec

logger = logging.getLogger(__name__)

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def default_flags() -> dict[str, bool]:
    """Flag name → package default: the master switch off, every task's flag on."""
    return {name: name != MASTER_FLAG for name in flag_names()}


def env_var(flag: str) -> str:
    """The environment variable that overrides ``flag`` (its name in capitals)."""
    return flag.upper()


class Flags:
    """The effective feature flags; unset flags take :func:`default_flags`.

    Read a flag as an attribute (``flags.enable_cpu_ml``).

    Raises:
        ValueError: On a flag no registered task owns.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: bool) -> None:
        defaults = default_flags()
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            raise ValueError(f"unknown flags {unknown}; known flags: {list(defaults)}")
        self._values = {**defaults, **{name: bool(v) for name, v in values.items()}}

    def __getattr__(self, name: str) -> bool:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flags) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Flags({', '.join(f'{k}={v}' for k, v in self._values.items())})"

    def ml_enabled(self, task: str) -> bool:
        """Whether ``task`` may use its model: ``enable_cpu_ml`` and the task's flag are on."""
        return self._values[MASTER_FLAG] and self._values.get(task_spec(task).flag, True)

    def to_dict(self) -> dict[str, bool]:
        """Flag name → value, ``enable_cpu_ml`` first, then the tasks' flags."""
        return dict(self._values)


def parse_bool(text: str) -> bool:
    """Parse a boolean setting such as ``"true"``, ``"0"`` or ``" Yes "``.

    The one parser of the project's boolean settings (flags, ``MIXAI_MLFLOW``, ``CI``).

    Raises:
        ValueError: If ``text`` is none of the accepted spellings.
    """
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; use one of {sorted(_TRUE)} or {sorted(_FALSE)}")


def resolve_flags(
    bundle_flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> Flags:
    """The effective flags: :func:`default_flags`, then ``bundle_flags``, then ``environ``.

    Args:
        bundle_flags: The manifest's ``flags``.
        environ: Environment variables; ``None`` reads :data:`os.environ`.
        strict: Raise on an unparsable environment value instead of warning.

    Raises:
        ValueError: On an unknown flag name in ``bundle_flags``, or (``strict``) on an
            unparsable environment value.
    """
    values = default_flags()
    for name, value in (bundle_flags or {}).items():
        if name not in values:
            raise ValueError(f"unknown flag {name!r}; known flags: {list(values)}")
        values[name] = bool(value)
    env = os.environ if environ is None else environ
    for name in values:
        variable = env_var(name)
        raw = env.get(variable, "")
        if not raw.strip():
            continue
        try:
            values[name] = parse_bool(raw)
        except ValueError as exc:
            message = f"environment variable {variable}: {exc}"
            if strict:
                raise ValueError(message) from None
            logger.warning("%s; keeping %s=%s", message, name, str(values[name]).lower())
    return Flags(**values)


__all__ = ["Flags", "default_flags", "env_var", "parse_bool", "resolve_flags"]
