"""``/v1/hosts``: the fleet's hosts and their maintenance (scope ``fleet``): what ``invoke fleet.status``,
``fleet.cordon``, ``fleet.drain`` and ``fleet.uncordon`` do, over HTTP. Cordon and uncordon are idempotent;
a drain runs on this instance in the background (``drains``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.service.api_previews import ERRORS
from drape_fleet.service.context import ServiceContext
from drape_fleet.service.errors import error
from drape_fleet.service.schemas import CordonBody, Drain, DrainBody, ErrorBody, Host, HostList

HostName = Annotated[str, Path(description="A host of the fleet.", examples=["ax1"])]
HOST_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 404: {"model": ErrorBody, "description": "Not a host of this fleet (the known ones are listed)"},
    502: {"model": ErrorBody, "description": "The host's engine refused"},
}


def fleet_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/hosts", tags=["fleet"])
    runtime = ctx.runtime

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except RuntimeFailure as exc:
            raise ctx.api_error(exc) from None

    async def host_status(host: str) -> Host:
        for status in await call(runtime.hosts):
            if status.name == host:
                return Host.from_status(status)
        raise ctx.api_error(runtime_unknown(host))

    def runtime_unknown(host: str) -> RuntimeFailure:
        try:
            runtime.fleet[host]
        except RuntimeFailure as exc:
            return exc
        return RuntimeFailure(f"host {host} did not report")

    @router.get("", response_model=HostList, responses=ERRORS, summary="Every host: capacity, health, cordon")
    async def hosts() -> HostList:
        return HostList(hosts=[Host.from_status(s) for s in await call(runtime.hosts)])

    @router.post("/{host}/cordon", response_model=Host, responses=HOST_ERRORS, summary="No new previews here")
    async def cordon(host: HostName, body: CordonBody) -> Host:
        await call(runtime.cordon, host, body.reason)
        return await host_status(host)

    @router.post("/{host}/uncordon", response_model=Host, responses=HOST_ERRORS, summary="Place previews here again")
    async def uncordon(host: HostName) -> Host:
        await call(runtime.uncordon, host)
        return await host_status(host)

    @router.post("/{host}/drain", response_model=Drain, status_code=202, responses=HOST_ERRORS,
                 summary="Cordon, stop previews as they go idle, move the rest after the deadline")
    async def drain(host: HostName, body: DrainBody) -> Drain:
        try:
            return ctx.drains.start(host, idle_s=body.idle_s, deadline_s=body.deadline_s)
        except RuntimeFailure as exc:
            raise ctx.api_error(exc) from None

    @router.get("/{host}/drain", response_model=Drain, responses=HOST_ERRORS, summary="A drain's progress")
    async def drain_state(host: HostName) -> Drain:
        state = ctx.drains.state(host)
        if state is None:
            raise error(404, "not_found", f"no drain of {host} was started on this instance ({ctx.instance})",
                        field="host", fix="ask the instance that started it, or start one with POST")
        return state

    return router
