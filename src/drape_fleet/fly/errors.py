"""Fly Machines API failures as exceptions that say what happened and what to do next.

Every error keeps the status, the API's own message (``{"error": "..."}``) and the ``fly-request-id``
Fly support asks for. The mapping lives in one place (``error_for``) so every call fails the same way.
"""

from __future__ import annotations

NEW_CREDENTIAL_ADVICE = ("create a token with `fly tokens create deploy -a APP` (or an org token for several "
                         "apps) and set DRAPE_FLY_API_TOKEN, or fly_api_token in ~/.config/drape-fleet/secrets.toml")


class FlyError(RuntimeError):
    """Base of every Fly Machines API failure."""

    hint = "see the message"

    def __init__(self, what: str, status: int, message: str, *, request_id: str = "", hint: str | None = None) -> None:
        self.what = what
        self.status = status
        self.message = message
        self.request_id = request_id
        self.hint = hint or type(self).hint
        reference = f" [fly-request-id {request_id}]" if request_id else ""
        answered = f"answered {status}" if status else "failed"
        super().__init__(f"Fly Machines API: {what} {answered}: {message or '(no message)'}{reference}. "
                         f"Fix: {self.hint}")


class FlyUnavailable(FlyError):
    hint = "check the network and the base URL; Fly's status page is https://status.flyio.net"


class FlyBadRequest(FlyError):
    hint = "the request was refused as invalid: correct the value the message names"


class FlyValidationError(FlyBadRequest):
    """422: validation failed."""


class FlyAuthError(FlyError):
    hint = f"the token is missing, mistyped, expired or revoked: {NEW_CREDENTIAL_ADVICE}"


class FlyPermissionError(FlyError):
    hint = ("the token lacks permissions for this app or action (a read-only token cannot start, stop or destroy): "
            + NEW_CREDENTIAL_ADVICE)


class FlyNotFound(FlyError):
    hint = "check the app name (`fly apps list`) and the machine id (`fly machines list -a APP`)"


class FlyWaitTimeout(FlyError):
    hint = "the machine did not reach the state in time: get it to see where it is, then wait again or act on it"


class FlyConflict(FlyError):
    hint = ("another process holds the machine's lease: wait until it expires, or if nothing else is working on it "
            "clear it with `fly machine leases clear ID -a APP`")


class FlyPreconditionFailed(FlyError):
    hint = "the machine's current state does not allow this: get the machine, let it settle, then retry"


class FlyRateLimited(FlyError):
    hint = ("Fly allows about 1 request/s per action per machine (bursts of 3): wait a minute and retry, "
            "and avoid running two cutover tasks at once")


class FlyServerError(FlyError):
    hint = ("Fly's API failed; the change may or may not have happened: get the machine to see its state before "
            "retrying (https://status.flyio.net)")


_BY_STATUS: dict[int, type[FlyError]] = {
    400: FlyBadRequest, 401: FlyAuthError, 403: FlyPermissionError, 404: FlyNotFound, 408: FlyWaitTimeout,
    409: FlyConflict, 412: FlyPreconditionFailed, 422: FlyValidationError, 429: FlyRateLimited,
}


def error_for(what: str, status: int, message: str, request_id: str = "") -> FlyError:
    """The exception for an HTTP error answer."""
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = FlyServerError if status >= 500 else FlyError
    return kind(what, status, message, request_id=request_id)
