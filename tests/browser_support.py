"""The system Chromium the browser tests drive (Debian's package; no tool downloads its own)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("MIXAI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Launch flags that work in a container as root, with no request of Chromium's own."""
