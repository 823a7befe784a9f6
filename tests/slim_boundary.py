"""The slim runtime's forbidden imports: the one list, in ``src/mixai_inference/pyproject.toml``
(ruff's ``banned-api``, enforced by ``make lint``), read here for the runtime tests."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

_CONFIG = Path(__file__).resolve().parents[1] / "src" / "mixai_inference" / "pyproject.toml"
_BANNED: dict[str, dict[str, str]] = tomllib.loads(_CONFIG.read_text("utf-8"))["tool"]["ruff"][
    "lint"
]["flake8-tidy-imports"]["banned-api"]
_SERVE_EXTRA = "the serve extra"

SERVE_EXTRA_MODULES: frozenset[str] = frozenset(
    name for name, entry in _BANNED.items() if entry["msg"].startswith(_SERVE_EXTRA)
)
"""Top-level modules of the ``serve`` extra: only ``mixai_inference.serve`` imports them."""

FORBIDDEN_MODULES: frozenset[str] = frozenset(_BANNED) - SERVE_EXTRA_MODULES
"""Top-level modules no part of ``mixai_inference`` may import (the service neither)."""


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``prometheus_client`` is
    ``prometheus-client``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions(modules: frozenset[str]) -> frozenset[str]:
    providers = packages_distributions()
    return frozenset(canonical(name) for module in modules for name in providers.get(module, ()))


def forbidden_distributions() -> frozenset[str]:
    """The installed distributions that provide a forbidden module (:func:`canonical`)."""
    return _distributions(FORBIDDEN_MODULES)


def serve_extra_distributions() -> frozenset[str]:
    """The installed distributions of the ``serve`` extra (:func:`canonical`)."""
    return _distributions(SERVE_EXTRA_MODULES)
