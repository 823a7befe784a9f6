"""The ASGI application of ``mixai-admin``: the console ``/admin/ml`` and ``/api/cron/*``.

Pages are rendered on the server (Jinja2, autoescaped: whatever the database holds is shown as
text) and need a session; every change is a POST that needs the session and its CSRF token,
and answers with a redirect to the page it came from (post/redirect/get). The triggers take
``Authorization: Bearer <CRON_SECRET>`` instead (docs/admin.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mixai_inference.ood import POLICIES
from mixai_inference.tasks import task_names
from mixai_ml.admin import actions, plots, runs, views
from mixai_ml.admin.audit import CRON_ACTOR, record
from mixai_ml.admin.console import Console
from mixai_ml.admin.rendering import ROOT, STATIC, SecurityHeaders, failed, templates, unreachable
from mixai_ml.admin.security import Session, bearer_token, same_secret
from mixai_ml.monitoring.accuracy import accuracy_metrics
from mixai_ml.monitoring.alerts import threshold_alerts
from mixai_ml.monitoring.windows import reference_time, window_summary

logger = logging.getLogger(__name__)
SESSION_COOKIE = "mixai_admin"
LOGIN_COOKIE = "mixai_admin_login"

Handler = Callable[[str, FormData], str]
"""A change: (operator, form) -> the message shown to the operator."""


def create_app(console: Console) -> Starlette:
    """The console's application on ``console``'s project."""
    pages = templates()

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = request.scope.get("session")
        context.update(
            session=session,
            flashes=session.take_flashes() if session else [],
            page=name.removesuffix(".html"),
        )
        return HTMLResponse(pages.get_template(name).render(context), status_code=status)

    def session_of(request: Request) -> Session | None:
        return console.sessions.get(request.cookies.get(SESSION_COOKIE))

    def now() -> datetime:
        return datetime.now(UTC)

    def page(
        build: Callable[[Request], dict[str, Any]], template: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """A GET route: the login page without a session, else ``template`` with ``build``."""

        async def endpoint(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return RedirectResponse(f"{ROOT}/login", status_code=303)
            request.scope["session"] = session
            await run_in_threadpool(runs.reap, console.engine, console.run_settings, now())
            context = await run_in_threadpool(build, request)
            return render(request, template, **context)

        return endpoint

    def change(handler: Handler, back: str) -> Callable[[Request], Awaitable[Response]]:
        """A POST route: refused (403, nothing changed) without a session or its CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return Response("log in first", status_code=403, media_type="text/plain")
            form = await request.form(max_files=0, max_fields=64)
            if not session.csrf_ok(str(form.get("csrf_token") or "")):
                return Response(
                    "missing or wrong CSRF token: reload the page and try again",
                    status_code=403,
                    media_type="text/plain",
                )

            def locked() -> str:
                with console.change_lock:
                    return handler(session.operator, form)

            try:
                session.flash("ok", await run_in_threadpool(locked))
            except actions.Malformed as error:
                return Response(str(error), status_code=400, media_type="text/plain")
            except (actions.Refused, runs.RunConflict, ValueError) as error:
                session.flash("error", str(error))
            return RedirectResponse(f"{ROOT}{back}", status_code=303)

        return endpoint

    # --- login --------------------------------------------------------------------------------

    async def login_form(request: Request, status: int = 200, error: str = "") -> Response:
        if session_of(request) is not None and not error:
            return RedirectResponse(ROOT, status_code=303)
        token = secrets.token_urlsafe(32)
        response = render(
            request,
            "login.html",
            status=status,
            login_token=token,
            error=error,
            configured=bool(console.operators),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
            path=f"{ROOT}/login",
        )
        return response

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=64)
        given, expected = str(form.get("login_token") or ""), request.cookies.get(LOGIN_COOKIE, "")
        if not (given and expected and same_secret(given, expected)):
            return Response("missing or wrong login token", status_code=403)
        operator = str(form.get("operator") or "").strip()
        keys = [f"address:{request.client.host if request.client else '?'}", f"operator:{operator}"]
        wait = console.throttle.retry_after(keys)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            response = await login_form(
                request, 429, f"Too many failed logins: try again in about {minutes} min."
            )
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        password = str(form.get("password") or "")
        if not await run_in_threadpool(console.check_password, operator, password):
            console.throttle.failed(keys)
            return await login_form(request, 401, "Wrong operator name or password.")
        console.throttle.succeeded(keys)
        token, _ = console.sessions.create(operator)

        def audit_login() -> None:
            with console.engine.begin() as connection:
                record(
                    connection,
                    actor=operator,
                    action="session.login",
                    target=None,
                    before=None,
                    after=None,
                    at=now(),
                )

        await run_in_threadpool(audit_login)
        response = RedirectResponse(ROOT, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{ROOT}/login")
        return response

    async def logout(request: Request) -> Response:
        session = session_of(request)
        form = await request.form(max_files=0, max_fields=64)
        if session is None or not session.csrf_ok(str(form.get("csrf_token") or "")):
            return Response("log in first", status_code=403, media_type="text/plain")
        console.sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(f"{ROOT}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- pages --------------------------------------------------------------------------------

    def overview(request: Request) -> dict[str, Any]:
        registry = views.registry(console.engine)
        return {
            "flags": views.flags(console.engine, console.bundle_flags()),
            "active": {
                task: next((r for r in rows if r["status"] == "active"), None)
                for task, rows in registry.items()
            },
            "jobs": views.training_jobs(console.engine, limit=6),
            "runs": views.runs(console.engine, limit=5),
            "privacy": views.privacy(console.engine, now()),
        }

    def models(request: Request) -> dict[str, Any]:
        return {
            "registry": views.registry(console.engine),
            "decisions": console.promotion_decisions(),
            "policies": views.ood_policies(console.engine, console.bundle_ood_policies()),
            "choices": POLICIES,
            "bundle_choice": actions.BUNDLE_POLICY,
        }

    def experiments(request: Request) -> dict[str, Any]:
        results = views.ab_results(console.engine)
        registry = views.registry(console.engine)
        return {
            "experiments": views.experiments(console.engine),
            "results": {
                str(key): rows.astype(object).where(rows.notna(), None).to_dict("records")
                for key, rows in results.groupby("experiment_id", sort=True)
            },
            "versions": {task: [r["version"] for r in rows] for task, rows in registry.items()},
            "roles": actions.ROLES,
        }

    def monitoring(request: Request) -> dict[str, Any]:
        settings = console.monitoring
        end = reference_time(console.engine, settings)
        window = request.query_params.get("window", "")
        if window not in settings.windows:
            window = next(iter(settings.windows))
        summary = (
            window_summary(console.engine, settings, end) if end is not None else pd.DataFrame()
        )
        alerts = threshold_alerts(summary, settings) if end is not None else pd.DataFrame()
        return {
            "reference": end,
            "windows": list(settings.windows),
            "window": window,
            "summary": summary.to_dict("records"),
            "alerts": alerts.to_dict("records"),
            "accuracy_metrics": accuracy_metrics(),
        }

    def training(request: Request) -> dict[str, Any]:
        return {
            "jobs": views.training_jobs(console.engine),
            "runs": views.runs(console.engine),
        }

    def privacy(request: Request) -> dict[str, Any]:
        return {"privacy": views.privacy(console.engine, now()), "runs": views.runs(console.engine)}

    def audit(request: Request) -> dict[str, Any]:
        try:
            number = max(0, int(request.query_params.get("page", "0")))
        except ValueError:
            number = 0
        action = request.query_params.get("action") or None
        entries, total = views.audit_log(console.engine, number, action)
        return {
            "entries": entries,
            "total": total,
            "number": number,
            "pages": max(1, -(-total // views.AUDIT_PAGE)),
            "action": action or "",
        }

    async def png(request: Request, draw: Callable[[], bytes | None]) -> Response:
        if session_of(request) is None:
            return Response("log in first", status_code=403)
        content = await run_in_threadpool(draw)
        if content is None:
            return Response("nothing to plot", status_code=404)
        return Response(content, media_type="image/png")

    async def forest(request: Request) -> Response:
        experiment_id = request.query_params.get("experiment_id", "")

        def draw() -> bytes | None:
            results = views.ab_results(console.engine, experiment_id)
            if results.empty:
                return None
            return plots.forest_png(results, console.ab_settings)

        return await png(request, draw)

    async def monitoring_plot(request: Request) -> Response:
        window = request.query_params.get("window", "")

        def draw() -> bytes | None:
            settings = console.monitoring
            end = reference_time(console.engine, settings)
            if end is None or window not in settings.windows:
                return None
            return plots.monitoring_png(console.engine, settings, end, window)

        return await png(request, draw)

    async def run_log(request: Request) -> Response:
        if session_of(request) is None:
            return Response("log in first", status_code=403)
        run_id = request.query_params.get("run_id", "")
        log = (console.run_settings.log_folder / f"{run_id}.log").resolve()
        if log.parent != console.run_settings.log_folder.resolve() or not log.is_file():
            return Response("no log for this run", status_code=404)
        text = log.read_bytes()[-65536:].decode("utf-8", errors="replace")
        return Response(text, media_type="text/plain; charset=utf-8")

    # --- changes ------------------------------------------------------------------------------

    def switch_flag(operator: str, form: FormData) -> str:
        flag, enabled = str(form.get("flag")), form.get("enabled") == "true"
        actions.set_flag(console.engine, flag, enabled, operator, now())
        return f"{flag} is now {'on' if enabled else 'off'}"

    def change_model(operator: str, form: FormData) -> str:
        command = str(form.get("command"))
        if command not in ("promote", "rollout", "rollback"):
            raise actions.Refused(f"unknown model action {command!r}")
        percent = form.get("rollout_pct")
        rollout_pct = None if percent in (None, "") else actions.parse_percent(str(percent))
        return actions.change_registry(
            console.context,
            console.engine,
            command,  # type: ignore[arg-type]
            str(form.get("task")),
            operator,
            now(),
            version=str(form["version"]) if form.get("version") else None,
            rollout_pct=rollout_pct,
        )

    def set_ood_policy(operator: str, form: FormData) -> str:
        task, policy = str(form.get("task")), str(form.get("ood_policy"))
        policies = console.bundle_ood_policies()
        return actions.set_ood_policy(console.engine, task, policy, policies, operator, now())

    def create_experiment(operator: str, form: FormData) -> str:
        task = str(form.get("task"))
        registered = {r["version"] for r in views.registry(console.engine).get(task, [])}
        rows = list(
            zip(
                map(str, form.getlist("variant")),
                map(str, form.getlist("serves")),
                map(str, form.getlist("weight")),
                strict=False,
            )
        )
        spec = actions.parse_experiment(
            str(form.get("experiment_id", "")),
            task,
            rows,
            str(form.get("coverage", "")),
            registered,
        )
        actions.create_experiment(console.engine, spec, operator, now())
        return f"experiment {spec.experiment_id} created as a draft: start it to route users"

    def change_experiment(operator: str, form: FormData) -> str:
        experiment_id, verb = str(form.get("experiment_id")), str(form.get("verb"))
        weights = {
            key.removeprefix("weight:"): str(value)
            for key, value in form.multi_items()
            if key.startswith("weight:")
        }
        coverage = form.get("coverage")
        actions.change_experiment(
            console.engine,
            experiment_id,
            verb,
            operator,
            now(),
            weights=weights or None,
            coverage=None if coverage is None else str(coverage),
        )
        return f"experiment {experiment_id}: {verb} done"

    def queue(kind: str, task: str | None, actor: str) -> runs.QueuedRun:
        """Queue a run (refused while one of its kind is live) and start its runner."""
        runs.reap(console.engine, console.run_settings, now())
        queued = runs.queue_run(console.engine, kind, task, actor, now())
        runs.start_runner(queued, console.project, console.run_settings, console.database_url)
        return queued

    def train_now(operator: str, form: FormData) -> str:
        task = str(form.get("task") or "") or None  # none chosen: every task
        queued = queue(runs.TRAIN, task, operator)
        return f"training of {task or 'all tasks'} queued as {queued.run_id}"

    def purge_now(operator: str, form: FormData) -> str:
        return f"purge queued as {queue(runs.PURGE, None, operator).run_id}"

    # --- triggers -----------------------------------------------------------------------------

    def trigger(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if console.cron_secret is None:
                return JSONResponse({"error": "CRON_SECRET is not set on the console"}, 503)
            given = bearer_token(request.headers.get("authorization"))
            if given is None or not same_secret(given, console.cron_secret):
                return JSONResponse(
                    {"error": "missing or wrong Authorization: Bearer <CRON_SECRET>"},
                    401,
                    headers={"www-authenticate": "Bearer"},
                )
            task = request.query_params.get("task") or None
            if task is not None and task not in task_names():
                return JSONResponse({"error": f"task must be one of {list(task_names())}"}, 400)

            def start() -> runs.QueuedRun:
                with console.change_lock:
                    return queue(kind, task, CRON_ACTOR)

            try:
                queued = await run_in_threadpool(start)
            except runs.RunConflict as conflict:
                return JSONResponse({"error": str(conflict), "run_id": conflict.live_run_id}, 409)
            return JSONResponse(
                {"run_id": queued.run_id, "training_job_ids": list(queued.training_job_ids)}, 202
            )

        return endpoint

    routes = [
        Route(ROOT, page(overview, "overview.html")),
        Route(f"{ROOT}/login", login_form, methods=["GET"]),
        Route(f"{ROOT}/login", login, methods=["POST"]),
        Route(f"{ROOT}/logout", logout, methods=["POST"]),
        Route(f"{ROOT}/models", page(models, "models.html")),
        Route(f"{ROOT}/experiments", page(experiments, "experiments.html")),
        Route(f"{ROOT}/experiments/forest.png", forest),
        Route(f"{ROOT}/monitoring", page(monitoring, "monitoring.html")),
        Route(f"{ROOT}/monitoring/plot.png", monitoring_plot),
        Route(f"{ROOT}/training", page(training, "training.html")),
        Route(f"{ROOT}/runs/log", run_log),
        Route(f"{ROOT}/privacy", page(privacy, "privacy.html")),
        Route(f"{ROOT}/audit", page(audit, "audit.html")),
        Route(f"{ROOT}/flags", change(switch_flag, ""), methods=["POST"]),
        Route(f"{ROOT}/models", change(change_model, "/models"), methods=["POST"]),
        Route(f"{ROOT}/models/ood", change(set_ood_policy, "/models"), methods=["POST"]),
        Route(f"{ROOT}/experiments", change(create_experiment, "/experiments"), methods=["POST"]),
        Route(
            f"{ROOT}/experiments/change",
            change(change_experiment, "/experiments"),
            methods=["POST"],
        ),
        Route(f"{ROOT}/training", change(train_now, "/training"), methods=["POST"]),
        Route(f"{ROOT}/privacy/purge", change(purge_now, "/privacy"), methods=["POST"]),
        Route("/api/cron/train", trigger(runs.TRAIN), methods=["POST"]),
        Route("/api/cron/purge", trigger(runs.PURGE), methods=["POST"]),
        Mount(f"{ROOT}/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def reaping(app: Starlette) -> AsyncIterator[None]:
        """While the console runs, reap dead runs (at start, then every half of
        ``stale_after_s``), visited or not."""

        async def reap_forever() -> None:
            while True:
                try:
                    await run_in_threadpool(runs.reap, console.engine, console.run_settings, now())
                except SQLAlchemyError as error:  # e.g. an outage: tried again next time
                    logger.warning("could not reap dead runs: %s", error)
                await asyncio.sleep(console.run_settings.stale_after_s / 2)

        reaper = asyncio.create_task(reap_forever())
        try:
            yield
        finally:
            reaper.cancel()
            with suppress(asyncio.CancelledError):
                await reaper

    app = Starlette(
        routes=routes,
        exception_handlers={OperationalError: unreachable, Exception: failed},
        lifespan=reaping,
    )
    app.add_middleware(SecurityHeaders)
    app.state.console = console
    return app
