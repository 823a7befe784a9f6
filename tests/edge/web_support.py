"""The web app under test: ``npm run build`` of a bundle, a static server, headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by Playwright
for Python with ``executable_path``: nothing downloads a browser.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from browser_support import CHROMIUM

WEB = Path(__file__).resolve().parents[2] / "web"


def missing_tools() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if shutil.which("npm") is None:
        return "npm is not installed (.ci/run installs Node and npm)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: make install"
    return None


def build_web_app(bundle: Path, dist: Path) -> Path:
    """``npm ci`` (when node_modules is missing), then ``npm run build`` of ``bundle`` into
    ``dist``."""
    env = {**os.environ, "MIXAI_BUNDLE": str(bundle), "MIXAI_EDGE_DIST": str(dist)}
    if not (WEB / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, env=env)
    subprocess.run(["npm", "run", "build"], cwd=WEB, check=True, env=env)
    return dist


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        self.requests.append(self.path)


@contextmanager
def static_server(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` on loopback; yields the base URL and the list of requested paths."""
    requests: list[str] = []
    handler = functools.partial(
        type("Handler", (_Handler,), {"requests": requests}), directory=str(folder)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()


def as_js_bytes(path: Path) -> str:
    """A file's bytes as base64, for ``page.evaluate`` (see :data:`DECODE_JS`)."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


#: JavaScript that turns base64 back into an ArrayBuffer in the page.
DECODE_JS = "b => Uint8Array.from(atob(b), c => c.charCodeAt(0)).buffer"
