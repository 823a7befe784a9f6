"""Where the project is, for the command lines that work on one (``mixai-registry``,
``mixai-admin``)."""

from __future__ import annotations

import sys
from pathlib import Path

from kedro.utils import find_kedro_project


def find_project(given: Path | None, program: str) -> Path | None:
    """The Kedro project containing ``given`` (default: the working folder), or ``None`` after
    telling the user on stderr how to point ``program`` at one."""
    start = (given or Path.cwd()).resolve()
    project = find_kedro_project(start)
    if project is None:
        print(
            f"{program}: {start} is not inside a MIXAI ML project (no pyproject.toml with "
            "[tool.kedro]); run it from the project folder or pass --project",
            file=sys.stderr,
        )
    return project
