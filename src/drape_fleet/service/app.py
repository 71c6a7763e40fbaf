"""The runtime as an HTTP/JSON service: ``create_app`` wires a ``PreviewRuntime`` into FastAPI.

    runtime = PreviewRuntime.connect(fleet, events=...)      # what ``cli.serve`` does
    app = create_app(runtime, settings=fleet.service, instance="ax1", tokens=TokenTable(...), ...)

Routes: ``api_previews`` (the backend's calls), ``api_fleet`` (hosts and maintenance), ``api_routing`` (the
cutover's routing questions, mounted by ``cli.build`` through ``extra_routers``), and here ``/healthz``
(the process answers), ``/readyz`` (engines answer), ``/metrics``. Every answer that is not a success is an
``ErrorBody`` (``errors``). The whole app sits behind ``guard`` (tokens, scopes, rates, body size).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from drape_fleet.config.service import ServiceSettings
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.api_fleet import fleet_router
from drape_fleet.service.api_previews import previews_router
from drape_fleet.service.auth import TokenTable
from drape_fleet.service.context import ServiceContext
from drape_fleet.service.errors import ApiError, error
from drape_fleet.service.guard import Asgi, Guard
from drape_fleet.service.limits import RateLimiter
from drape_fleet.service.metrics import ServiceMetrics
from drape_fleet.service.phases import PhaseBoard
from drape_fleet.service.schemas import ErrorBody, Health, Problem, Readiness

log = logging.getLogger(__name__)

API_VERSION = "1"


def create_app(runtime: PreviewRuntime, *, settings: ServiceSettings, instance: str, tokens: TokenTable,
               metrics: ServiceMetrics, board: PhaseBoard, close_runtime: bool = True, log_workspace: bool = True,
               extra_routers: Iterable[APIRouter] = (), on_close: Iterable[Callable[[], None]] = ()) -> Asgi:
    """The ASGI app: FastAPI behind the guard. ``metrics`` and ``board`` must be the runtime's event listeners
    (``phases.Events(metrics, board)`` passed as ``PreviewRuntime(events=...)``). ``on_close``: called at shutdown,
    before the runtime is closed (the routers' own threads)."""
    ctx = ServiceContext(runtime=runtime, settings=settings, instance=instance, metrics=metrics, board=board)
    metrics.watch_hosts(runtime.hosts)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        board.bind(asyncio.get_running_loop())
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        log.info("instance %s serving %d hosts (%s)", instance, len(runtime.fleet.names),
                 ", ".join(runtime.fleet.names))
        try:
            yield
        finally:
            for close in on_close:
                await run_in_threadpool(close)
            if close_runtime:
                await run_in_threadpool(runtime.close)

    app = FastAPI(title="drape-runtime", version=API_VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Drape's preview runtime over HTTP: start, pre-warm, activity, stop, status and "
                              "phases of a workspace's preview; the fleet's hosts and their maintenance. Every "
                              "call but /healthz and /readyz needs `Authorization: Bearer <token>`.")
    _handlers(app)
    app.include_router(previews_router(ctx))
    app.include_router(fleet_router(ctx))
    for router in extra_routers:
        app.include_router(router)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process answers")
    async def healthz() -> Health:
        return Health(status="ok", instance=instance)

    @app.get("/readyz", response_model=Readiness, tags=["health"], summary="Engines answer",
             responses={503: {"model": Readiness, "description": "No engine answers"}})
    async def readyz() -> JSONResponse:
        state = await run_in_threadpool(ctx.readiness)
        return JSONResponse(state.model_dump(), status_code=200 if state.status == "ready" else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (scope metrics)",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus() -> Response:
        return Response(await run_in_threadpool(metrics.scrape), media_type=CONTENT_TYPE_LATEST)

    return Guard(app, tokens=tokens, limiter=RateLimiter(), max_body_bytes=settings.max_body_bytes, metrics=metrics,
                 log_workspace=log_workspace)


def _handlers(app: FastAPI) -> None:
    def answer(failure: ApiError) -> JSONResponse:
        return JSONResponse(failure.body.model_dump(exclude_none=True), status_code=failure.status,
                            headers=failure.headers)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        first = problems[0] if problems else Problem(field="body", message="invalid request", fix="see the API")
        failure = error(422, "invalid_request", "; ".join(f"{p.field}: {p.message}" for p in problems),
                        field=first.field, fix=first.fix)
        body = failure.body.model_copy(update={"problems": problems})
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return answer(error(exc.status_code, code, str(exc.detail),
                            fix="see GET /openapi.json for the routes and their methods"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(ErrorBody(error="internal", message=f"internal error ({type(exc).__name__})").model_dump(
            exclude_none=True), status_code=500)


_VALIDATION_FIXES = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
    "json_invalid": "send a JSON object with Content-Type: application/json",
    "model_attributes_type": "send a JSON object",
    "dict_type": "send a JSON object",
    "string_type": "send a string",
    "float_parsing": "send a number",
    "float_type": "send a number",
    "int_parsing": "send a whole number",
    "enum": "use one of the values listed in the message",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "greater_than": "use a larger number",
}


def _problem(details: Any) -> Problem:
    loc = [str(part) for part in details.get("loc", ()) or ()]
    kind = str(details.get("type", ""))
    field = ".".join(loc) or "body"
    message = str(details.get("msg", "invalid"))
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}" if loc else "unknown field"
    elif kind == "json_invalid":
        field, message = "body", f"not valid JSON ({(details.get('ctx') or {}).get('error', 'parse error')})"
    return Problem(field=field, message=message, fix=_VALIDATION_FIXES.get(kind, "correct the value"))
