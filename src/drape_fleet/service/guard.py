"""The door every request passes before the API sees it (a plain ASGI middleware: cheap on the hot path).

In order: ``/healthz`` and ``/readyz`` go straight through (the ingress and monitoring probe them); anything
else needs a valid bearer token (401), a token with the route's scope (403), room in its caller's rate bucket
(429 with Retry-After), and a body within the size limit (413; the body is read here, bounded, and handed on).
A refused request's unread body is read and dropped (bounded) before the answer: closing a connection with
unread bytes resets it, and the reset can overtake the answer (Caddy then cuts it off half-sent).
Then the request runs, and its caller, route, status and time go to the metrics and to one log line. Tokens
are never logged: a refused request is logged with the client's address, an accepted one with its caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from drape_fleet.service.auth import Caller, TokenTable
from drape_fleet.service.errors import ApiError, error
from drape_fleet.service.limits import RateLimiter
from drape_fleet.service.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
UNAUTHENTICATED = "-"
"""The caller label of requests without a valid token (one label value, however many strangers knock)."""

DISCARD_LIMIT_BYTES = 8 << 20
DISCARD_LIMIT_S = 10.0
"""How much of a caller's refused body is read and dropped, and for how long, before the answer goes anyway."""

log = logging.getLogger("drape_fleet.service.access")


def required_scope(path: str) -> str | None:
    """The scope a path needs; None: any valid token (the OpenAPI document)."""
    if path.startswith("/v1/hosts"):
        return "fleet"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/"):
        return "previews"
    return None


class Guard:
    def __init__(self, app: Asgi, *, tokens: TokenTable, limiter: RateLimiter, max_body_bytes: int,
                 metrics: ServiceMetrics, log_workspace: bool = True) -> None:
        self._app = app
        self._tokens = tokens
        self._limiter = limiter
        self._max_body = max_body_bytes
        self._metrics = metrics
        self._log_workspace = log_workspace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        caller = self._tokens.authenticate(_header(scope, b"authorization"))
        body = _Body(receive)
        try:
            receive = await self._admit(scope, caller, body)
        except ApiError as refused:
            # A caller's own oversized body is drained so that it reads its 413; a stranger's only up to the limit.
            await body.discard(DISCARD_LIMIT_BYTES if caller is not None else self._max_body)
            await _send_error(send, refused)
            self._done(scope, caller, refused.status, started)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            self._done(scope, caller, status, started)

    async def _admit(self, scope: Scope, caller: Caller | None, receive: Receive) -> Receive:
        if caller is None:
            raise error(401, "unauthorized", "no valid bearer token",
                        fix="send Authorization: Bearer <token> with a token issued for this fleet "
                            "(invoke service.token --caller NAME)")
        needed = required_scope(scope["path"])
        if needed is not None and needed not in caller.scopes:
            raise error(403, "forbidden", f"caller {caller.name} may not use {needed} endpoints",
                        fix=f"use a token with the {needed!r} scope")
        wait = self._limiter.take(caller.name, caller.limits)
        if wait is not None:
            raise error(429, "rate_limited", f"caller {caller.name} is over {caller.limits.rate_per_s:g} requests/s "
                        f"(burst {caller.limits.burst})", fix="slow down; try again after Retry-After seconds",
                        retry_after_s=wait)
        scope.setdefault("state", {})["caller"] = caller.name
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise _too_large(self._max_body)
        if scope["method"] in ("GET", "HEAD"):
            return receive
        return await self._buffered(receive)

    async def _buffered(self, receive: Receive) -> Receive:
        """Read the body (at most the limit, whatever Content-Length said), then hand it on in one piece."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)  # the client went away: pass that on
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise _too_large(self._max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)

    def _done(self, scope: Scope, caller: Caller | None, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
        name = caller.name if caller is not None else UNAUTHENTICATED
        self._metrics.request_done(name, scope["method"], template, status, seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        if caller is None:
            client = scope.get("client") or ("?", 0)
            log.info("%s %s %s from %s: no valid token", status, scope["method"], scope["path"][:200], client[0])
            return
        workspace = (scope.get("path_params") or {}).get("workspace") if self._log_workspace else None
        log.info("%s %s %s%s by %s in %.1f ms", status, scope["method"], template,
                 f" [{workspace}]" if workspace else "", name, seconds * 1000)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large(limit: int) -> ApiError:
    return error(413, "too_large", f"the request body is over {limit} bytes", field="body",
                 fix=f"send at most {limit} bytes")


class _Body:
    """The request's receive, remembering whether the body has been read to its end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.finished = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message

    async def discard(self, limit: int) -> None:
        """Read what is left of the body and drop it, up to ``limit`` bytes and ``DISCARD_LIMIT_S`` seconds."""
        dropped = 0
        try:
            async with asyncio.timeout(DISCARD_LIMIT_S):
                while not self.finished and dropped <= limit:
                    dropped += len((await self()).get("body", b""))
        except TimeoutError:
            pass  # a client that trickles its body gets the answer anyway, and the connection closes


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()  # later: the client's disconnect (long-polls and streams listen for it)

    return replay


async def _send_error(send: Send, failure: ApiError) -> None:
    body = json.dumps(failure.body.model_dump(exclude_none=True)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in failure.headers.items()]
    await send({"type": "http.response.start", "status": failure.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
