"""Where the project is: relative paths in parameters and the default database resolve here.

Kedro knows the project path of a session; :class:`mixai_ml.hooks.ProjectPathHooks`
records it when a session starts, so a project copied elsewhere (a test, a
scheduled job) keeps its data to itself. Outside a session (scripts, the
registry CLI) the project is the checkout this package was installed from.
"""

from __future__ import annotations

from pathlib import Path

_root = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The project folder (the one holding ``conf/`` and ``data/``)."""
    return _root


def set_project_root(path: str | Path) -> None:
    """Make ``path`` the project folder (called when a Kedro session starts)."""
    global _root
    _root = Path(path).resolve()


def resolve(path: str | Path) -> Path:
    """``path`` if absolute, else relative to :func:`project_root`."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else project_root() / candidate
