"""The console under test: ``mixai-admin`` started on loopback on a project copy, an HTTP
client logged in as an operator, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, select

from browser_support import CHROMIUM, CHROMIUM_ARGS
from mixai_ml.admin.passwords import hash_password
from mixai_ml.db import schema

OPERATOR = "alice"
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD, log2_n=10)  # cheap for tests; production uses 2**15
CRON_SECRET = "Cr0n-secret-for-tests"
_TOKEN = re.compile(r'name="(csrf_token|login_token)" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AdminServer:
    """A running ``mixai-admin``."""

    url: str
    project: Path
    db_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def engine(self) -> Engine:
        return create_engine(self.db_url)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def project_db_url(project: Path) -> str:
    return f"sqlite:///{project / 'data' / 'mixai.db'}"


def stop_live_runs(db_url: str) -> None:
    """Stop the runner process groups of runs still live (they outlive the console)."""
    engine = create_engine(db_url)
    runs = schema.pipeline_runs
    with engine.connect() as connection:
        pids = connection.execute(
            select(runs.c.pid).where(runs.c.status.in_(schema.LIVE_RUN_STATUSES))
        ).scalars()
        for pid in pids:
            if pid:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGTERM)
    engine.dispose()


@contextmanager
def admin_server(
    project: Path, *, db_url: str | None = None, env: Mapping[str, str] | None = None
) -> Iterator[AdminServer]:
    """``mixai-admin --project PROJECT`` on a free loopback port, stopped afterwards.

    Its operator is :data:`OPERATOR` and its trigger secret :data:`CRON_SECRET` unless ``env``
    says otherwise; the database is ``db_url`` (default: the project's own SQLite file).
    """
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MIXAI_DB_URL", "CRON_SECRET", "MIXAI_ADMIN_PASSWORD_HASH")
    }
    environment.update(
        MIXAI_ADMIN_USER=OPERATOR,
        MIXAI_ADMIN_PASSWORD_HASH=PASSWORD_HASH,
        CRON_SECRET=CRON_SECRET,
        KEDRO_DISABLE_TELEMETRY="1",
        MPLBACKEND="Agg",
    )
    if db_url:
        environment["MIXAI_DB_URL"] = db_url
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    log = project / f"admin-{port}.log"
    command = [sys.executable, "-m", "mixai_ml.admin", "--project", str(project)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=project, env=environment, stdout=out, stderr=out
        )
    server = AdminServer(
        f"http://127.0.0.1:{port}", project, db_url or project_db_url(project), process, log
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mixai-admin exited:\n{server.output()}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/admin/ml/login", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"mixai-admin did not answer in 90 s:\n{server.output()}")
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        stop_live_runs(server.db_url)


def token(html: str, name: str = "csrf_token") -> str:
    """The value of the hidden form field ``name`` in a page."""
    for field, value in _TOKEN.findall(html):
        if field == name:
            return value
    raise AssertionError(f"no {name} in the page:\n{html[:2000]}")


def login(server: AdminServer, password: str = PASSWORD, operator: str = OPERATOR) -> httpx.Client:
    """An HTTP client logged in to ``server`` (raises if the login is refused)."""
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=60)
    response = try_login(client, password, operator)
    if response.status_code != 303:
        raise AssertionError(f"login refused: {response.status_code} {response.text[:500]}")
    return client


def try_login(client: httpx.Client, password: str, operator: str = OPERATOR) -> httpx.Response:
    form = client.get("/admin/ml/login")
    data = {"login_token": token(form.text, "login_token"), "operator": operator}
    return client.post("/admin/ml/login", data={**data, "password": password})


def csrf(client: httpx.Client) -> str:
    return token(client.get("/admin/ml").text)


@contextmanager
def chromium_page(**context: Any) -> Iterator[Any]:
    """A page of Debian's Chromium (never a downloaded browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(**context)
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def browser_login(page: Any, server: AdminServer) -> None:
    page.goto(f"{server.url}/admin/ml")
    page.get_by_label("Operator").fill(OPERATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/admin/ml")
