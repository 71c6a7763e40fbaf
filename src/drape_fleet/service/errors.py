"""The runtime's errors as HTTP answers that keep their meaning: a status code, a stable ``error`` code, the
field at fault and the fix (``ErrorBody``), and ``Retry-After`` where trying again later helps.

=====================  ======  ====================  ==========================================================
runtime raises         status  error                 when
=====================  ======  ====================  ==========================================================
``UnknownFramework``   400     unknown_framework     the framework is not one of the fleet's (``known`` lists them)
``RequestTooLarge``    400     too_large             more resources than the largest preview or any host
``BadRequest``         400     bad_request           an unsafe id, repo, ref or environment variable
``WorkspaceConflict``  409     workspace_conflict    the workspace's preview is another user's / framework's
``QueueFull``          503     queue_full            every host full and the wait line at its limit (Retry-After)
``HostUnavailable``    503     host_unavailable      that host's engine does not answer now (Retry-After)
``UnknownHost``        404     unknown_host          not a host of this fleet (``known`` lists them)
``EngineError``        502     engine_error          the engine answered with an error the runtime cannot act on
=====================  ======  ====================  ==========================================================

The service's own: 401 unauthorized (no valid bearer token), 403 forbidden (the token lacks the scope),
413 too_large (body over the limit), 422 invalid_request (not JSON, wrong type, unknown field), 429 rate_limited
(Retry-After), 404 not_found (no preview).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from drape_fleet.runtime.errors import (
    BadRequest,
    EngineError,
    HostUnavailable,
    QueueFull,
    RequestTooLarge,
    RuntimeFailure,
    UnknownFramework,
    UnknownHost,
    WorkspaceConflict,
)
from drape_fleet.service.schemas import ErrorBody

RETRY_QUEUE_FULL_S = 10.0
"""A full fleet frees capacity as previews go idle (minutes); ten seconds keeps retries from hammering."""
RETRY_HOST_S = 5.0

WORKSPACE_FIX = "use letters, digits, '-' and '_' (1-63 characters, not starting with '-' or '_')"
_FIXES = {
    "workspace": WORKSPACE_FIX,
    "user": "use letters, digits and . _ @ + - (1-128 characters)",
    "project": "use letters, digits and . _ @ + - (1-128 characters), or leave it out (default: the workspace)",
    "repo": "give a public https:// URL or git@host:path address, without credentials (the token goes in repo_token)",
    "ref": "give a branch, tag or commit name (no '..', not starting with '-' or '/')",
    "env": "use names of A-Z, 0-9 and _ that the runtime does not reserve, and string values under 4096 characters",
    "repo_token": "give the token alone (printable ASCII, no spaces), and a repo to clone with it",
}


class ApiError(Exception):
    """An answer other than success: raised by the routes, turned into JSON by the app's handler."""

    def __init__(self, status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body.error)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status} {self.body.error}: {self.body.message}"


def error(status: int, code: str, message: str, *, field: str | None = None, fix: str | None = None,
          known: Sequence[str] | None = None, retry_after_s: float | None = None) -> ApiError:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="drape-runtime"'
    body = ErrorBody(error=code, message=message, field=field, fix=fix,
                     known=list(known) if known is not None else None, retry_after_s=retry_after_s)
    return ApiError(status, body, headers)


def from_runtime(exc: RuntimeFailure, *, frameworks: Iterable[str], hosts: Iterable[str]) -> ApiError:
    """The HTTP answer for what the runtime raised (the table above)."""
    message = str(exc)
    if isinstance(exc, UnknownFramework):
        known = sorted(frameworks)
        return error(400, "unknown_framework", message, field="framework", known=known,
                     fix=f"use one of: {', '.join(known)}")
    if isinstance(exc, RequestTooLarge):
        return error(400, "too_large", message, field=exc.field,
                     fix="ask for at most the largest preview allowed, or leave resources out for the default")
    if isinstance(exc, BadRequest):
        return error(400, "bad_request", message, field=exc.field, fix=_FIXES.get(exc.field, "correct the value"))
    if isinstance(exc, WorkspaceConflict):
        other_user = "another user" in message
        return error(409, "workspace_conflict", message, field="user" if other_user else "framework",
                     fix="use a workspace id of this user's own" if other_user
                     else "stop the running preview first (DELETE /v1/previews/{workspace}), then start again")
    if isinstance(exc, QueueFull):
        return error(503, "queue_full", message, fix="try again after Retry-After seconds: the fleet is at capacity",
                     retry_after_s=RETRY_QUEUE_FULL_S)
    if isinstance(exc, HostUnavailable):
        return error(503, "host_unavailable", message, field="host",
                     fix="try again later, or act on another host", retry_after_s=RETRY_HOST_S)
    if isinstance(exc, UnknownHost):
        known = list(hosts)
        return error(404, "unknown_host", message, field="host", known=known, fix=f"use one of: {', '.join(known)}")
    if isinstance(exc, EngineError):
        return error(502, "engine_error", message, fix="see the message; the host's engine refused the request")
    return error(500, "internal", message)
