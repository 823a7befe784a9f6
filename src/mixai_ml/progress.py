"""Progress bars on a terminal, silence elsewhere (CI, logs, notebooks' captured output)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars show only on an interactive terminal, never when ``CI`` or ``MIXAI_NO_PROGRESS``
    is set."""
    if os.environ.get("CI") or os.environ.get("MIXAI_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """``tqdm(iterable, **kwargs)`` on a terminal, the plain iterable otherwise."""
    if not progress_enabled():
        return iterable
    return tqdm(iterable, leave=False, **kwargs)
