"""The slim runtime's forbidden imports: the one list, in ``src/mixai_inference/pyproject.toml``
(ruff's ``banned-api``, enforced by ``make lint``), read here for the runtime tests."""

from __future__ import annotations

import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

_CONFIG = Path(__file__).resolve().parents[1] / "src" / "mixai_inference" / "pyproject.toml"

FORBIDDEN_MODULES: frozenset[str] = frozenset(
    tomllib.loads(_CONFIG.read_text("utf-8"))["tool"]["ruff"]["lint"]["flake8-tidy-imports"][
        "banned-api"
    ]
)
"""Top-level modules ``mixai_inference`` must not import."""


def forbidden_distributions() -> frozenset[str]:
    """The installed distributions that provide a forbidden module (lower case)."""
    providers = packages_distributions()
    return frozenset(
        name.lower() for module in FORBIDDEN_MODULES for name in providers.get(module, ())
    )
