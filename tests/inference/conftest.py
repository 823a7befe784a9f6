"""Make this folder's helper modules (``synthetic_audio``, ``librosa_oracle``,
``bundle_factory``) importable by its tests under ``--import-mode=importlib``, which does not
put test folders on ``sys.path``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _no_console_log_handlers() -> Iterator[None]:
    """Keep other libraries' console handlers (Kedro installs a rich one on the root logger
    when it is imported) out of these tests, whose stdout is the CLI's JSON."""
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers[:] = [h for h in saved if not type(h).__module__.startswith(("kedro", "rich"))]
    yield
    root.handlers[:] = saved
