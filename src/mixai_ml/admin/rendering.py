"""How the console's pages are rendered: Jinja2 templates (autoescaped: whatever the database
holds is shown as text), their display filters, and the security headers of every response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixai_inference.tasks import task_names

ROOT = "/admin/ml"
_HERE = Path(__file__).parent
STATIC = _HERE / "static"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response: no scripts, no framing, no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


async def unreachable(request: Request, error: Exception) -> Response:
    """The answer while the database is unreachable (a page works again once it is back)."""
    return Response(
        f"The database is unreachable ({type(error).__name__}); try again in a moment.",
        status_code=503,
        media_type="text/plain",
        headers=SECURITY_HEADERS,
    )


async def failed(request: Request, error: Exception) -> Response:
    """The answer to any other error: no details (they are in the console's log)."""
    return Response(
        "Internal error: see the console's log.",
        status_code=500,
        media_type="text/plain",
        headers=SECURITY_HEADERS,
    )


def _when(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "–"
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _age(value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    minutes = int(pd.Timedelta(value).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _num(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if pd.isna(number) else f"{number:.{digits}g}"


def _pct(value: Any) -> str:
    try:
        number = 100.0 * float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if pd.isna(number) else f"{number:.2f} %"


def _pretty(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return json.dumps(json.loads(value), indent=1, sort_keys=True)
    except ValueError:
        return value


def templates() -> Environment:
    """The templates, with the filters ``when``, ``age``, ``num``, ``pct`` and ``pretty``."""
    environment = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True)
    environment.filters.update(when=_when, age=_age, num=_num, pct=_pct, pretty=_pretty)
    environment.globals.update(root=ROOT, tasks=task_names())
    return environment
