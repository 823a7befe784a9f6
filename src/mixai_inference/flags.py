"""Feature flags (CONTRACTS §3): package defaults, then the bundle's, then the environment.

- ``enable_cpu_ml`` (``ENABLE_CPU_ML``, default false): the master switch;
- ``enable_master_regression`` (``ENABLE_MASTER_REGRESSION``, default true);
- ``enable_preset_recommendation`` (``ENABLE_PRESET_RECOMMENDATION``, default true);
- ``enable_align_confidence`` (``ENABLE_ALIGN_CONFIDENCE``, default true).

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
from dataclasses import dataclass
from typing import Final

from mixai_inference.bundle import FLAG_NAMES, TASK_FLAGS

logger = logging.getLogger(__name__)

DEFAULT_FLAGS: Final = {
    "enable_cpu_ml": False,
    "enable_master_regression": True,
    "enable_preset_recommendation": True,
    "enable_align_confidence": True,
}

ENV_VARS: Final = {name: name.upper() for name in FLAG_NAMES}
"""Flag name → the environment variable that overrides it."""

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Flags:
    """The effective feature flags."""

    enable_cpu_ml: bool = DEFAULT_FLAGS["enable_cpu_ml"]
    enable_master_regression: bool = DEFAULT_FLAGS["enable_master_regression"]
    enable_preset_recommendation: bool = DEFAULT_FLAGS["enable_preset_recommendation"]
    enable_align_confidence: bool = DEFAULT_FLAGS["enable_align_confidence"]

    def ml_enabled(self, task: str) -> bool:
        """Whether ``task`` (``master_reg``, ``preset_cls``, ``align_conf``) may use its model."""
        return self.enable_cpu_ml and bool(getattr(self, TASK_FLAGS[task]))

    def to_dict(self) -> dict[str, bool]:
        """Flag name → value, in :data:`FLAG_NAMES` order."""
        return {name: getattr(self, name) for name in FLAG_NAMES}


def parse_bool(text: str) -> bool:
    """Parse a flag value such as ``"true"``, ``"0"`` or ``" Yes "``.

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
    bundle_flags: Mapping[str, bool] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> Flags:
    """The effective flags: :data:`DEFAULT_FLAGS`, then ``bundle_flags``, then ``environ``.

    Args:
        bundle_flags: The manifest's ``flags`` (names from :data:`FLAG_NAMES`).
        environ: Environment variables; ``None`` reads :data:`os.environ`.
        strict: Raise on an unparsable environment value instead of warning.

    Raises:
        ValueError: On an unknown flag name in ``bundle_flags``, or (``strict``) on an
            unparsable environment value.
    """
    values = dict(DEFAULT_FLAGS)
    for name, value in (bundle_flags or {}).items():
        if name not in values:
            raise ValueError(f"unknown flag {name!r}; known flags: {list(FLAG_NAMES)}")
        values[name] = bool(value)
    env = os.environ if environ is None else environ
    for name, variable in ENV_VARS.items():
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
