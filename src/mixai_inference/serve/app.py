"""The HTTP API of ``mixai-serve`` (CONTRACTS §9), on Starlette.

* ``POST /v1/predict``: ``{"features": [...], "user_id", "job_id"}``, or ``{"audio_path":
  ...}``, or a multipart upload ``audio``; the JSON of ``mixai-infer predict --json`` plus
  ``request_id``;
* ``POST /v1/align``: ``{"vocal_path", "instrumental_path", ...}`` or uploads ``vocal`` and
  ``instrumental``; the JSON of ``mixai-infer align --json`` plus ``request_id``;
* ``GET /healthz``: the process is alive;
* ``GET /readyz``: 200 when a bundle is loaded and the control is fresh, else 503 with the
  reasons;
* ``GET /metrics``: the Prometheus text format (:mod:`mixai_inference.serve.telemetry`).

A request with features is answered on the event loop (tens of microseconds); audio is
decoded and analysed in a pool of ``audio_concurrency`` threads, with a timeout.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mixai_inference.errors import AudioError
from mixai_inference.serve.inputs import (
    ID_PATTERN,
    BadRequest,
    audio_path,
    feature_vector,
    optional_id,
    parse_json,
)
from mixai_inference.serve.runtime import Runtime
from mixai_inference.serve.telemetry import Telemetry

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[dict[str, Any]]]


class JSONResponse(Response):
    """A JSON answer, encoded by ``orjson`` (the answer's floats as Python writes them)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class _TooLarge(Exception):
    pass


def _limited(request: Request, limit: int) -> Request:
    """``request`` whose body stream raises :class:`_TooLarge` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is over the limit of {limit} bytes")
    receive = request.receive
    seen = 0

    async def counted() -> Any:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge
        return message

    return Request(request.scope, counted)


class Api:
    """The routes over one :class:`~mixai_inference.serve.runtime.Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings = settings
        self.telemetry = Telemetry(runtime)
        self._token = settings.token.encode() if settings.token else None
        self._pool = ThreadPoolExecutor(
            settings.audio_concurrency, thread_name_prefix="mixai-audio"
        )
        self._slots: asyncio.Semaphore | None = None

    # --- plumbing ----------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            raise BadRequest(401, "send the service token as 'Authorization: Bearer <token>'")

    def endpoint(self, route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` with authorization, the request id, error replies and telemetry."""

        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            try:
                self._authorize(request)
                answer = await handler(request)
                response: Response = JSONResponse(answer)
            except BadRequest as exc:
                response = JSONResponse({"error": exc.message}, exc.status)
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
            except AudioError as exc:  # unusable audio: the reader's message says what to send
                response = JSONResponse({"error": str(exc)}, 400)
            except HTTPException as exc:  # e.g. a malformed multipart body
                response = JSONResponse({"error": exc.detail}, exc.status_code)
            except _TooLarge:
                limit = self._limit(request)
                response = JSONResponse(
                    {"error": f"the body is over the limit of {limit} bytes"}, 413
                )
            except Exception:  # a bug: say so, keep serving
                logger.exception("%s failed", route)
                response = JSONResponse({"error": "internal error; it is logged"}, 500)
            self.telemetry.observe(route, response.status_code, time.perf_counter() - start)
            return response

        return wrapped

    def _limit(self, request: Request) -> int:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self.settings.max_upload_bytes
        return self.settings.max_body_bytes

    @staticmethod
    def _request_id(request: Request) -> str:
        given = request.headers.get("x-request-id")
        if given is None:
            return uuid.uuid4().hex
        if not ID_PATTERN.fullmatch(given):
            raise BadRequest(400, "X-Request-ID must be 1 to 64 letters, digits or . _ : @ -")
        return given

    async def _inputs(
        self, request: Request, files: tuple[str, ...]
    ) -> tuple[dict[str, Any], FormData | None]:
        """The JSON object or the multipart form of a request, within the size limits."""
        limited = _limited(request, self._limit(request))
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await limited.form(max_files=len(files), max_fields=8)
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return fields, form
        if content_type and not content_type.startswith("application/json"):
            raise BadRequest(415, "send application/json, or multipart/form-data with the audio")
        return parse_json(await limited.body()), None

    async def _in_pool(self, work: Callable[[], Any]) -> Any:
        """Run audio work in the pool, waiting at most ``audio_timeout_s`` in all."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.audio_concurrency)
        timeout = self.settings.audio_timeout_s
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            raise BadRequest(
                503, f"busy analysing audio; retry in a while ({timeout:g} s)"
            ) from None
        future = asyncio.get_running_loop().run_in_executor(self._pool, work)
        future.add_done_callback(lambda _: self._slots.release() if self._slots else None)
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline - time.monotonic())
        except TimeoutError:
            raise BadRequest(504, f"the audio took longer than {timeout:g} s to analyse") from None

    async def _audio_files(
        self, data: dict[str, Any], form: FormData | None, fields: dict[str, str]
    ) -> tuple[dict[str, Path], list[Path]]:
        """Each audio field's file: under the audio root, or an upload saved to a temp file."""
        paths: dict[str, Path] = {}
        temporary: list[Path] = []
        for field, path_field in fields.items():
            upload = form.get(field) if form is not None else None
            if isinstance(upload, UploadFile):
                suffix = Path(upload.filename or "").suffix[:8]
                handle, name = tempfile.mkstemp(prefix="mixai-upload-", suffix=suffix)
                with os.fdopen(handle, "wb") as out:
                    while chunk := await upload.read(1 << 20):
                        out.write(chunk)
                temporary.append(Path(name))
                paths[field] = Path(name)
            elif data.get(path_field) is not None:
                paths[field] = audio_path(self.settings.audio_root, data[path_field], path_field)
            else:
                raise BadRequest(
                    400,
                    f"send {path_field!r} (a path under the audio root) or upload {field!r} "
                    "as multipart/form-data",
                )
        return paths, temporary

    async def _on_audio(
        self,
        data: dict[str, Any],
        form: FormData | None,
        fields: dict[str, str],
        work: Callable[[dict[str, Path]], Any],
    ) -> Any:
        """``work`` on the request's audio files (by field), in the pool; uploads are deleted
        afterwards."""
        paths, temporary = await self._audio_files(data, form, fields)
        try:
            return await self._in_pool(lambda: work(paths))
        finally:
            for path in temporary:
                path.unlink(missing_ok=True)

    # --- routes ------------------------------------------------------------------------------

    async def predict(self, request: Request) -> dict[str, Any]:
        request_id = self._request_id(request)
        data, form = await self._inputs(request, ("audio",))
        user_id, job_id = optional_id(data, "user_id"), optional_id(data, "job_id")
        predictor = self.runtime.predictor
        if form is None and "features" in data:
            features = feature_vector(data["features"])
            result = predictor.predict(features, user_id, job_id, request_id)
        else:

            def work(paths: dict[str, Path]) -> Any:
                from mixai_inference.audio import load_audio
                from mixai_inference.features import extract_features

                audio, sr = load_audio(paths["audio"])
                features = extract_features(audio, sr)
                return predictor.predict(features, user_id, job_id, request_id)

            result = await self._on_audio(data, form, {"audio": "audio_path"}, work)
        return {**result.to_dict(), "request_id": request_id}

    async def align(self, request: Request) -> dict[str, Any]:
        request_id = self._request_id(request)
        data, form = await self._inputs(request, ("vocal", "instrumental"))
        user_id, job_id = optional_id(data, "user_id"), optional_id(data, "job_id")
        predictor = self.runtime.predictor
        fields = {"vocal": "vocal_path", "instrumental": "instrumental_path"}

        def work(paths: dict[str, Path]) -> Any:
            from mixai_inference.audio import load_pair

            vocal, instrumental, sr = load_pair(paths["vocal"], paths["instrumental"])
            return predictor.align(vocal, instrumental, sr, user_id, job_id, request_id)

        result = await self._on_audio(data, form, fields, work)
        return {**result.to_dict(), "request_id": request_id}

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        ready, detail = self.runtime.readiness()
        return JSONResponse(detail, 200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        body, content_type = self.telemetry.exposition()
        return Response(body, media_type=content_type)


def create_app(runtime: Runtime) -> Starlette:
    """The ASGI application; the runtime's threads run while the app is up."""
    api = Api(runtime)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()
            api._pool.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/v1/predict", api.endpoint("/v1/predict", api.predict), methods=["POST"]),
        Route("/v1/align", api.endpoint("/v1/align", api.align), methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.api = api
    return app
