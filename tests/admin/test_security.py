"""The console's security rules, tried by breaking them against a running ``mixai-admin``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, insert, select
from starlette.routing import Route
from starlette.testclient import TestClient

from admin_support import (
    CRON_SECRET,
    PASSWORD,
    PASSWORD_HASH,
    AdminServer,
    admin_server,
    browser_login,
    chromium_page,
    csrf,
    login,
    try_login,
)
from mixai_ml.admin.app import SESSION_COOKIE, create_app
from mixai_ml.admin.console import Console
from mixai_ml.db import schema
from project_copy import copy_project, kedro_in_this_process, seed_registry

pytestmark = pytest.mark.slow  # each starts mixai-admin (a Kedro session: seconds)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SCRIPT_VERSION = '<script>window.__pwned = "version"</script>'
SCRIPT_EXPERIMENT = "<script>window.__pwned = 'experiment'</script>"
# one form that every change route would accept, had it a session and the CSRF token
EVERY_FIELD = {
    "flag": "enable_cpu_ml",
    "enabled": "true",
    "command": "rollout",
    "task": "master_reg",
    "rollout_pct": "50",
    "experiment_id": "exp-new",
    "verb": "start",
    "coverage": "0.5",
    "variant": ["control", "treatment"],
    "serves": ["active", "rules"],
    "weight": ["1", "1"],
    "ood_policy": "fallback",
}


def hostile_project(folder: Path) -> Path:
    """A project with a hostile model version and a hostile experiment name in its database."""
    root = copy_project(folder)
    seed_registry(root, "master_reg", ["v1", "v2"], "v1", NOW)
    engine = create_engine(f"sqlite:///{root / 'data' / 'mixai.db'}")
    with engine.begin() as connection:
        connection.execute(
            insert(schema.model_registry).values(
                model_id=f"master_reg:{SCRIPT_VERSION}",
                task="master_reg",
                version=SCRIPT_VERSION,
                uri="master_reg/hostile.onnx",  # a candidate: never shipped, never read
                sha256="0" * 64,
                feature_schema_version="1",
                status="candidate",
                rollout_pct=0.0,
                metrics=json.dumps({"mae_norm": 0.1}),
                created_at=NOW,
            )
        )
        connection.execute(
            insert(schema.ab_experiments).values(
                experiment_id=SCRIPT_EXPERIMENT,
                task="master_reg",
                variants=json.dumps({"control": "active", "treatment": "candidate"}),
                weights=json.dumps({"control": 1, "treatment": 1}),
                coverage=0.5,
                status="draft",
            )
        )
    engine.dispose()
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_project(tmp_path_factory.mktemp("security") / "project")


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[AdminServer]:
    """One console for the tests that change nothing it remembers (starting one takes seconds)."""
    with admin_server(project) as running:
        yield running


def change_routes(project: Path) -> list[str]:
    """Every POST route of the console's application except the login and the triggers."""
    with kedro_in_this_process():
        console = Console(project, secure_cookies=False, environ={})
        app = create_app(console)
    paths = [
        route.path
        for route in app.routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
    ]
    return [path for path in paths if not path.endswith("/login") and "/api/" not in path]


def state(engine: Engine) -> dict[str, Any]:
    """Every table a change could touch, and the audit log without logins."""
    audit = schema.admin_audit_log
    tables = (
        schema.ml_feature_flags,
        schema.ml_task_settings,
        schema.model_registry,
        schema.ab_experiments,
        schema.pipeline_runs,
        schema.training_jobs,
    )
    with engine.connect() as connection:
        snapshot: dict[str, Any] = {
            table.name: sorted(map(tuple, connection.execute(select(table)))) for table in tables
        }
        snapshot["audit"] = connection.execute(
            select(func.count()).select_from(audit).where(audit.c.action != "session.login")
        ).scalar_one()
    return snapshot


def test_every_change_route_refuses_a_request_without_session_or_csrf_token(
    server: AdminServer,
) -> None:
    routes = change_routes(server.project)
    # flags, models, OOD policy, experiments ×2, training, purge, logout
    assert len(routes) >= 8, routes
    engine = server.engine()
    before = state(engine)
    anonymous = httpx.Client(base_url=server.url, follow_redirects=False)
    operator = login(server)
    for path in routes:
        assert anonymous.post(path, data=EVERY_FIELD).status_code == 403, path
        assert operator.post(path, data=EVERY_FIELD).status_code == 403, path
        wrong = {**EVERY_FIELD, "csrf_token": "not-the-token"}
        assert operator.post(path, data=wrong).status_code == 403, path
        # a token of another session is no better
        other = login(server)
        assert (
            operator.post(path, data={**EVERY_FIELD, "csrf_token": csrf(other)}).status_code == 403
        )
    assert state(engine) == before
    # the control: the same request with the session's own token does change a flag
    response = operator.post("/admin/ml/flags", data={**EVERY_FIELD, "csrf_token": csrf(operator)})
    assert response.status_code == 303
    assert state(engine)["ml_feature_flags"] != before["ml_feature_flags"]


WRONG_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    f"Bearer {CRON_SECRET.lower()}",
    f"Bearer {CRON_SECRET.upper()}",
    f"Bearer {CRON_SECRET.swapcase()}",
    f"Bearer {CRON_SECRET}x",
    f"Bearer {CRON_SECRET[:-1]}",
    f"Bearer  {CRON_SECRET} extra",
    f"Token {CRON_SECRET}",
    "Basic " + base64.b64encode(f"cron:{CRON_SECRET}".encode()).decode(),
]


def test_the_triggers_refuse_a_missing_or_wrong_secret(server: AdminServer) -> None:
    engine = server.engine()
    before = state(engine)
    for authorization in WRONG_AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        for path in ("/api/cron/train", "/api/cron/train?task=master_reg", "/api/cron/purge"):
            response = httpx.post(f"{server.url}{path}", headers=headers)
            assert response.status_code == 401, (path, authorization)
            assert response.headers["www-authenticate"] == "Bearer"
    assert state(engine) == before


def test_the_triggers_answer_503_without_a_configured_secret(tmp_path: Path) -> None:
    with admin_server(copy_project(tmp_path / "project"), env={"CRON_SECRET": None}) as server:
        for path in ("/api/cron/train", "/api/cron/purge"):
            response = httpx.post(
                f"{server.url}{path}", headers={"Authorization": f"Bearer {CRON_SECRET}"}
            )
            assert response.status_code == 503
            assert "CRON_SECRET" in response.json()["error"]


def test_names_from_the_database_are_shown_as_text(server: AdminServer) -> None:
    operator = login(server)
    for path, hostile in (
        ("/admin/ml/models", SCRIPT_VERSION),
        ("/admin/ml/experiments", SCRIPT_EXPERIMENT),
    ):
        html = operator.get(path).text
        assert hostile not in html
        assert (
            hostile.replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&#34;")
            .replace("'", "&#39;")
            in html
        )
    with chromium_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        browser_login(page, server)
        for path, hostile in (
            ("/admin/ml/models", SCRIPT_VERSION),
            ("/admin/ml/experiments", SCRIPT_EXPERIMENT),
        ):
            page.goto(f"{server.url}{path}")
            assert page.get_by_text(hostile).first.is_visible()
            assert page.locator("script").count() == 0
            assert page.evaluate("window.__pwned") is None
        assert dialogs == []


def test_failed_logins_are_rate_limited(tmp_path: Path) -> None:
    """On a console of its own: afterwards, this address may not log in for 15 minutes."""
    with admin_server(copy_project(tmp_path / "project")) as server:
        refused_after_five_failures(server)


def refused_after_five_failures(server: AdminServer) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    for _ in range(5):
        assert try_login(client, "wrong password").status_code == 401
    refused = try_login(client, PASSWORD)  # even the right password, for now
    assert refused.status_code == 429
    assert 60 < int(refused.headers["retry-after"]) <= 15 * 60 + 1
    assert "Too many failed logins" in refused.text
    # from the same address, another operator name is refused too
    assert try_login(client, PASSWORD, operator="bob").status_code == 429


def test_unknown_operators_and_wrong_passwords_get_the_same_answer(server: AdminServer) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    wrong_password = try_login(client, "nope")
    unknown = try_login(client, PASSWORD, operator="mallory")
    assert wrong_password.status_code == unknown.status_code == 401
    assert "Wrong operator name or password." in wrong_password.text
    assert "Wrong operator name or password." in unknown.text


def test_the_session_cookie_is_httponly_strict_and_secure_outside_loopback(
    server: AdminServer, project: Path
) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    cookie = try_login(client, PASSWORD).headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # on loopback plain HTTP must work
    # a console listening beyond loopback marks it Secure
    with kedro_in_this_process():
        console = Console(
            project, secure_cookies=True, environ={"MIXAI_ADMIN_PASSWORD_HASH": PASSWORD_HASH}
        )
        with TestClient(create_app(console), base_url="https://console.example") as test:
            form = test.get("/admin/ml/login")
            token = form.text.split('name="login_token" value="')[1].split('"')[0]
            response = test.post(
                "/admin/ml/login",
                data={"login_token": token, "operator": "admin", "password": PASSWORD},
                follow_redirects=False,
            )
    assert response.status_code == 303
    assert "; secure" in response.headers["set-cookie"].lower()


def test_pages_forbid_scripts_framing_and_caching(server: AdminServer) -> None:
    operator = login(server)
    for path in ("/admin/ml/login", "/admin/ml", "/admin/ml/audit"):
        headers = operator.get(path).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_pages_and_plots_need_a_session(server: AdminServer) -> None:
    anonymous = httpx.Client(base_url=server.url, follow_redirects=False)
    for path in ("/admin/ml", "/admin/ml/models", "/admin/ml/audit", "/admin/ml/training"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/ml/login"
    for path in ("/admin/ml/monitoring/plot.png?window=1d", "/admin/ml/runs/log?run_id=x"):
        assert anonymous.get(path).status_code == 403


def test_logout_ends_the_session_on_the_server(server: AdminServer) -> None:
    operator = login(server)
    assert operator.get("/admin/ml").status_code == 200
    stolen = operator.cookies[SESSION_COOKIE]
    assert operator.post("/admin/ml/logout", data={"csrf_token": csrf(operator)}).status_code == 303
    replay = httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: stolen})
    assert replay.get("/admin/ml", follow_redirects=False).status_code == 303
