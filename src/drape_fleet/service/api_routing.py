"""``/v1/routing``: the cutover's routing questions (``drape_fleet.routing.api``: where a user's preview goes, a
failed placement, a measured start, the policy in force), mounted beside the service's own routes and behind the
same guard (scope ``previews``: the backend asks them with its own token).

The contract (paths, bodies, answers) is the routing package's ``ENDPOINTS``; this module only binds each one to
FastAPI: a GET's model becomes its query parameters, a POST's its JSON body, both strict (an unknown field is a
422 naming it). A ``RoutingError`` (a user id the policy cannot use) is a 400 naming ``user``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.concurrency import run_in_threadpool

from drape_fleet.routing.api import ENDPOINTS, Endpoint, PlacementFailure, Recorded, RoutingApi, StartReport
from drape_fleet.routing.policy import Route, RoutingError
from drape_fleet.service.errors import error
from drape_fleet.service.metrics import ServiceMetrics
from drape_fleet.service.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A user id the policy cannot use (the field and the fix)"},
    422: {"model": ErrorBody, "description": "A wrong type or an unknown field (each named)"},
}


def routing_router(api: RoutingApi, metrics: ServiceMetrics | None = None) -> APIRouter:
    """Every routing endpoint, answered by ``api`` (one ``Router`` per process: ``Router.for_runtime``); what they
    record is counted in ``metrics`` too (the service's ``/metrics``, summed over its worker processes)."""
    router = APIRouter(tags=["routing"])
    observe = _observer(metrics) if metrics is not None else None
    if metrics is not None:
        metrics.watch_routing(lambda: (api.router.policy.phase, api.router.generation))
    for endpoint in ENDPOINTS:
        router.add_api_route(endpoint.path, _bound(api, endpoint, observe), methods=[endpoint.method],
                             response_model=endpoint.answer, summary=endpoint.summary, responses=ERRORS)
    return router


Observe = Callable[[Any, Any], None]


def _observer(metrics: ServiceMetrics) -> Observe:
    """What the Router recorded for a call, as the service's counters (the Router keeps its own for the report)."""
    def observe(body: Any, answer: Any) -> None:
        if isinstance(body, StartReport) and isinstance(answer, Recorded):
            metrics.routing_start(answer.phase, body.provider, body.kind, body.seconds, ok=body.ok)
        elif isinstance(body, PlacementFailure) and isinstance(answer, Route):
            metrics.routing_start(answer.phase, "hetzner", body.kind, None, ok=False)
            if answer.provider == "fly":
                metrics.routing_fallback(answer.phase)
    return observe


def _bound(api: RoutingApi, endpoint: Endpoint, observe: Observe | None) -> Callable[..., Any]:
    answer = getattr(api, endpoint.handler)

    async def handle(**given: Any) -> Any:
        try:
            result = await run_in_threadpool(answer, *given.values())
        except RoutingError as exc:
            raise error(400, "bad_request", str(exc), field="user",
                        fix="use the runtime's user id syntax: letters, digits and . _ @ + - (1-128)") from None
        if observe is not None:
            observe(next(iter(given.values()), None), result)
        return result

    parameters = []
    if endpoint.body is not None:
        where = Query() if endpoint.method == "GET" else Body()
        parameters.append(inspect.Parameter("given", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            annotation=Annotated[endpoint.body, where]))
    handle.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    handle.__name__ = endpoint.handler
    return handle
