"""``/v1/previews``: what the backend calls for a user's preview (scope ``previews``).

Every call is idempotent, so a client may send it again after a timeout or to another instance: ``PUT`` start
is "start or get" (the same workspace twice is one preview), ``PUT .../prewarm`` likewise, ``POST .../activity``
only moves a timestamp, ``DELETE`` of a stopped preview answers ``stopped: false``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from drape_fleet.runtime.errors import QueueFull, RuntimeFailure
from drape_fleet.runtime.labels import WORKSPACE_RE
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import PreviewStatus, StopResult
from drape_fleet.service.context import ServiceContext
from drape_fleet.service.errors import WORKSPACE_FIX, error
from drape_fleet.service.phases import event_stream, wait_final, wait_for_change
from drape_fleet.service.schemas import ErrorBody, Preview, PreviewList, PrewarmBody, StartBody, Stopped

Workspace = Annotated[str, Path(description="The workspace's id (letters, digits, '-' and '_').",
                                examples=["ws-42"])]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in {
        400: "Bad request: the field and the fix (unknown framework: the known ones)",
        401: "No valid bearer token", 403: "The token lacks the scope", 413: "Body over the limit",
        409: "The workspace's preview belongs to another user or runs another framework",
        422: "Not JSON, a wrong type, or an unknown field (each named)",
        429: "This caller is over its rate (Retry-After)", 503: "Queue full or host unavailable (Retry-After)",
    }.items()
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "The workspace has no preview"}}


def previews_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/previews", tags=["previews"])
    runtime = ctx.runtime

    def checked(workspace: str) -> str:
        if not WORKSPACE_RE.fullmatch(workspace):
            raise error(400, "bad_request", f"{workspace!r} is not a safe workspace id", field="workspace",
                        fix=WORKSPACE_FIX)
        return workspace

    def not_found(workspace: str) -> Exception:
        return error(404, "not_found", f"workspace {workspace!r} has no preview", field="workspace",
                     fix="start it with PUT /v1/previews/{workspace}")

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except QueueFull as exc:
            ctx.metrics.queue_full()
            raise ctx.api_error(exc) from None
        except RuntimeFailure as exc:
            raise ctx.api_error(exc) from None

    @router.put("/{workspace}", response_model=Preview, responses=ERRORS, summary="Start, or get the running one")
    async def start(workspace: Workspace, body: StartBody) -> Response:
        """Start the workspace's preview, or get the one it has. Answers at once (a hot start answers ``ready``
        and its URL) unless ``wait_s`` asks to hold the answer until ready, failed or lost."""
        checked(workspace)
        called_at = time.monotonic()
        status: PreviewStatus = await call(runtime.start, workspace, **body.runtime_kwargs())
        ctx.metrics.start_answered(status, called_at=called_at)
        if body.wait_s and not status.phase.final:
            waited = await wait_final(ctx.board, ctx.status, workspace, status,
                                      min(body.wait_s, ctx.settings.long_poll_max_s))
            status = waited or status
        return answer(status)

    @router.put("/{workspace}/prewarm", response_model=Preview, responses=ERRORS,
                summary="The user opened the project: prepare its preview")
    async def prewarm(workspace: Workspace, body: PrewarmBody) -> Response:
        """Start preparing the preview in the background. Never queues: when the fleet is full the pre-warm
        gives up (phase ``failed``) and a later start queues as usual."""
        checked(workspace)
        return answer(await call(runtime.project_opened, workspace, **body.runtime_kwargs()))

    @router.post("/{workspace}/activity", status_code=204, responses=ERRORS, response_class=Response,
                 summary="The user is still here")
    async def activity(workspace: Workspace) -> Response:
        """Keeps the preview alive ``persist_minutes`` after this call (in memory, written in the background)."""
        checked(workspace)
        runtime.activity(workspace)
        return Response(status_code=204)

    @router.delete("/{workspace}", response_model=Stopped, responses=ERRORS, summary="Stop and remove")
    async def stop(workspace: Workspace) -> Stopped:
        checked(workspace)
        result: StopResult = await call(runtime.stop_preview, workspace)
        return Stopped(workspace=workspace, stopped=result.removed, pending_hosts=list(result.pending_hosts))

    @router.get("/{workspace}", response_model=Preview, responses={**ERRORS, **NOT_FOUND}, summary="Status")
    async def status(workspace: Workspace) -> Response:
        checked(workspace)
        found = await call(runtime.status, workspace)
        if found is None:
            raise not_found(workspace)
        return answer(found)

    @router.get("/{workspace}/wait", response_model=Preview, responses={**ERRORS, **NOT_FOUND},
                summary="Long-poll: the status once its phase moves on")
    async def wait(workspace: Workspace,
                   after: Annotated[Phase | None, Query(description="The phase you last saw.")] = None,
                   timeout_s: Annotated[float, Query(ge=0, le=120, description="Capped by the service.")] = 25.0,
                   ) -> Response:
        """Answers as soon as the phase differs from ``after`` (or the queue position moves), the preview is
        ready, failed or lost, or ``timeout_s`` passes (then with the same phase: ask again)."""
        checked(workspace)
        found = await wait_for_change(ctx.board, _guarded_status(ctx, call), workspace, after=after,
                                      timeout=min(timeout_s, ctx.settings.long_poll_max_s))
        if found is None:
            raise not_found(workspace)
        return answer(found)

    @router.get("/{workspace}/events", responses={**ERRORS, **NOT_FOUND,
                                                  200: {"content": {"text/event-stream": {}},
                                                        "description": "event: phase (a Preview), event: end"}},
                summary="Server-sent events: every phase change until final")
    async def events(workspace: Workspace) -> StreamingResponse:
        checked(workspace)
        first = await call(runtime.status, workspace)
        if first is None:
            raise not_found(workspace)
        stream = event_stream(ctx.board, _guarded_status(ctx, call), workspace, first, ctx.settings.stream_max_s)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("", response_model=PreviewList, responses=ERRORS, summary="Every preview on the fleet")
    async def previews() -> PreviewList:
        return PreviewList(previews=[Preview.from_status(s) for s in await call(runtime.previews)])

    return router


def answer(status: PreviewStatus) -> Response:
    """A preview as JSON, serialised once by pydantic (the hot path: FastAPI would validate and encode it again)."""
    return Response(Preview.from_status(status).model_dump_json(), media_type="application/json")


def _guarded_status(ctx: ServiceContext, call: Any) -> Any:
    async def read(workspace: str) -> PreviewStatus | None:
        result: PreviewStatus | None = await call(ctx.runtime.status, workspace)
        return result

    return read
