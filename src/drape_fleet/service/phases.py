"""Following a preview's phases without hammering: a long-poll (``GET .../wait?after=<phase>``) answers as soon
as the phase moves on, and an event stream (``GET .../events``, server-sent events) pushes every change.

The runtime announces every phase change of the previews this process tracks (``RuntimeEvents``), on its own
threads; ``PhaseBoard`` hands that to the event loop, where the waiting requests sleep, without a thread each.
A status is read again at least every ``RECHECK_S`` all the same: a preview this instance does not track yet
(placed by another instance) is taken over by that read, and a host that stops answering changes the status
without a phase event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

from drape_fleet.runtime.events import RuntimeEvents
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import PreviewStatus, ReapReport
from drape_fleet.service.schemas import Preview

RECHECK_S = 1.0
HEARTBEAT_S = 15.0
MAX_WORKSPACES = 50_000
"""Versions kept (oldest forgotten first): bounded memory whatever the traffic."""

ReadStatus = Callable[[str], Awaitable[PreviewStatus | None]]


class PhaseBoard(RuntimeEvents):
    """A version per workspace, moved by every phase change; waiters sleep until it moves past the one they saw
    before they last read the status, so a change between that read and the sleep is never missed."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def version(self, workspace: str) -> int:
        return self._versions.get(workspace, 0)

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        with self._lock:
            self._versions[workspace] = self._versions.get(workspace, 0) + 1
            self._versions.move_to_end(workspace)
            if len(self._versions) > MAX_WORKSPACES:
                self._versions.popitem(last=False)
        loop = self._loop
        if loop is not None and workspace in self._waiters:  # a racy read: ``changed`` checks the version again
            loop.call_soon_threadsafe(self._wake, workspace)

    def _wake(self, workspace: str) -> None:
        for future in self._waiters.pop(workspace, set()):
            if not future.done():
                future.set_result(None)

    async def changed(self, workspace: str, seen: int, timeout: float) -> None:
        """Sleep until the workspace's version moves past ``seen`` (a phase change in this process), or
        ``timeout`` passes."""
        if self.version(workspace) != seen:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(workspace, set()).add(future)
        try:
            if self.version(workspace) == seen:  # moved while registering: do not sleep
                await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(workspace)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[workspace]


class Events(RuntimeEvents):
    """Several listeners as one (the metrics and the board)."""

    def __init__(self, *listeners: RuntimeEvents) -> None:
        self._listeners = listeners

    def requested(self, workspace: str, *, project: str, framework: str, prewarm: bool) -> None:
        for listener in self._listeners:
            listener.requested(workspace, project=project, framework=framework, prewarm=prewarm)

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        for listener in self._listeners:
            listener.phase_changed(workspace, old, new, seconds=seconds, host=host)

    def queue_length(self, length: int) -> None:
        for listener in self._listeners:
            listener.queue_length(length)

    def reaped(self, report: ReapReport) -> None:
        for listener in self._listeners:
            listener.reaped(report)


def _moved(status: PreviewStatus, after: Phase | None, position: int | None) -> bool:
    return after is None or status.phase is not after or status.phase.final or status.queue_position != position


async def wait_for_change(board: PhaseBoard, read: ReadStatus, workspace: str, *, after: Phase | None,
                          timeout: float, position: int | None = None) -> PreviewStatus | None:
    """The workspace's status once its phase is not ``after`` (or its queue position moved), it is final, or
    ``timeout`` passed; None when it has no preview."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = board.version(workspace)
        status = await read(workspace)
        remaining = deadline - loop.time()
        if status is None or remaining <= 0 or _moved(status, after, position):
            return status
        await board.changed(workspace, seen, min(remaining, RECHECK_S))


async def wait_final(board: PhaseBoard, read: ReadStatus, workspace: str, status: PreviewStatus,
                     timeout: float) -> PreviewStatus | None:
    """Follow ``status`` until ready, failed or lost, or ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    current: PreviewStatus | None = status
    while current is not None and not current.phase.final:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        current = await wait_for_change(board, read, workspace, after=current.phase, timeout=remaining,
                                        position=current.queue_position)
    return current


async def event_stream(board: PhaseBoard, read: ReadStatus, workspace: str, first: PreviewStatus,
                       max_s: float) -> AsyncIterator[bytes]:
    """Server-sent events: ``event: phase`` with the preview's JSON on every change, a comment every
    ``HEARTBEAT_S`` so proxies keep the stream open, ``event: end`` when final, gone or at ``max_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    status: PreviewStatus | None = first
    last_sent = loop.time()
    yield _event("phase", Preview.from_status(first).model_dump_json())
    while status is not None and not status.phase.final and loop.time() < deadline:
        previous = status
        status = await wait_for_change(board, read, workspace, after=previous.phase, position=previous.queue_position,
                                       timeout=min(HEARTBEAT_S, deadline - loop.time()))
        if status is not None and _moved(status, previous.phase, previous.queue_position):
            yield _event("phase", Preview.from_status(status).model_dump_json())
            last_sent = loop.time()
        elif loop.time() - last_sent >= HEARTBEAT_S:
            yield b": still here\n\n"
            last_sent = loop.time()
    reason = "final" if status is not None and status.phase.final else "gone" if status is None else "timeout"
    yield _event("end", json.dumps({"reason": reason}))


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()
