"""What the Robot webservice can answer besides success, as exceptions that say what to do.

Error answers are ``{"error": {"status", "code", "message"}}`` (plus ``missing``/``invalid`` for INVALID_INPUT
and ``max_request``/``interval`` for RATE_LIMIT_EXCEEDED), per the webservice documentation
(https://robot.hetzner.com/doc/webservice/en.html, "Errors"). Each documented code maps to one class and a
hint; an unknown code still becomes a ``RobotError`` with its message.
"""

from __future__ import annotations

from collections.abc import Sequence


class RobotError(RuntimeError):
    """An answer from Robot that is not a success (or no answer at all): status, code, message and a fix."""

    def __init__(self, status: int, code: str, message: str, *, request: str = "", hint: str = "") -> None:
        self.status, self.code, self.message, self.request = status, code, message, request
        self.hint = hint or HINTS.get(code, "see Robot's message")
        where = f"Robot {request}: " if request else "Robot: "
        answer = f"{status} {code}" if status else code
        super().__init__(f"{where}{answer}: {message}. Fix: {self.hint}")


class RobotAuthError(RobotError):
    """The credentials were refused. Never retried: Robot blocks the caller's IP for 10 minutes after three
    failed logins."""


class RobotRateLimited(RobotError):
    def __init__(self, status: int, code: str, message: str, *, request: str = "", max_request: int | None = None,
                 interval: int | None = None, waited_s: float = 0.0) -> None:
        self.max_request, self.interval, self.waited_s = max_request, interval, waited_s
        limit = (f"Robot allows {max_request} requests per {interval} s on this route"
                 if max_request and interval else "Robot limits requests on this route")
        hint = f"{limit}; waited {waited_s:.0f} s for it to clear. Wait a while and re-run"
        super().__init__(status, code, message, request=request, hint=hint)


class RobotNotFound(RobotError):
    pass


class RobotInvalidInput(RobotError):
    def __init__(self, status: int, code: str, message: str, *, request: str = "",
                 missing: Sequence[str] = (), invalid: Sequence[str] = ()) -> None:
        self.missing, self.invalid = tuple(missing), tuple(invalid)
        parts = [f"missing: {', '.join(self.missing)}" if self.missing else "",
                 f"invalid: {', '.join(self.invalid)}" if self.invalid else ""]
        detail = "; ".join(p for p in parts if p) or "no detail given"
        super().__init__(status, code, message, request=request,
                         hint=f"the request's fields were refused ({detail}): this is a bug in drape-fleet "
                              "or a value Robot does not accept for this server")


class RobotConflict(RobotError):
    """Something else is in progress or already active on the server."""


class RobotUnavailable(RobotError):
    """Robot could not be reached, is in maintenance, or failed on its side."""


AUTH_HINT = ("check robot_user and robot_password: they are the webservice user (Robot: Settings, 'Web service "
             "and app settings'), not your Robot login. Stopped at the first refusal: Robot blocks this IP for "
             "10 minutes after 3 failed logins, so wait 10 minutes if earlier attempts failed too")

HINTS: dict[str, str] = {
    "UNAUTHORIZED": AUTH_HINT,
    "SERVER_NOT_FOUND": "check the server number (fleet file: robot_server_number) against "
                        "`invoke fleet.robot-list`",
    "NOT_FOUND": "Robot holds nothing at this path for this account",
    "BOOT_NOT_AVAILABLE": "Robot offers no boot configuration for this server (cancelled, or a product without "
                          "one): check the server in Robot",
    "BOOT_ALREADY_ENABLED": "another boot configuration (e.g. a Linux installation) is active: deactivate it in "
                            "Robot (server, tabs Rescue/Linux) and re-run",
    "BOOT_ACTIVATION_FAILED": "Robot could not activate it: retry in a minute; if it persists, contact support",
    "BOOT_DEACTIVATION_FAILED": "Robot could not deactivate it: retry in a minute; if it persists, contact "
                                "support",
    "RESET_NOT_AVAILABLE": "this server cannot be reset through the webservice: reset it in Robot's web "
                           "interface",
    "RESET_MANUAL_ACTIVE": "a manual reset by a technician is already pending: wait for it, then re-run",
    "RESET_FAILED": "retry; if it keeps failing, order a manual reset in Robot",
    "FIREWALL_IN_PROCESS": "a previous firewall change is still being applied: wait 30 s and re-run",
    "FIREWALL_PORT_NOT_FOUND": "Robot knows no switch port for this server: ask Hetzner support",
    "FIREWALL_NOT_AVAILABLE": "this server's product has no Robot firewall",
    "RATE_LIMIT_EXCEEDED": "wait a few minutes and re-run",
    "MAINTENANCE": "the webservice is down for maintenance: try again later",
    "INTERNAL_ERROR": "Robot failed on its side: try again later",
    "UNREACHABLE": "check the network and the base URL",
}

_KINDS: dict[str, type[RobotError]] = {
    "SERVER_NOT_FOUND": RobotNotFound, "NOT_FOUND": RobotNotFound, "BOOT_NOT_AVAILABLE": RobotNotFound,
    "RESET_NOT_AVAILABLE": RobotNotFound, "FIREWALL_PORT_NOT_FOUND": RobotNotFound,
    "FIREWALL_NOT_AVAILABLE": RobotNotFound,
    "BOOT_ALREADY_ENABLED": RobotConflict, "RESET_MANUAL_ACTIVE": RobotConflict,
    "FIREWALL_IN_PROCESS": RobotConflict, "CONFLICT": RobotConflict,
    "BOOT_ACTIVATION_FAILED": RobotUnavailable, "BOOT_DEACTIVATION_FAILED": RobotUnavailable,
    "RESET_FAILED": RobotUnavailable, "INTERNAL_ERROR": RobotUnavailable, "MAINTENANCE": RobotUnavailable,
}


def error_for(status: int, body: object, *, request: str) -> RobotError:
    """The exception for an error answer (``body`` is the decoded JSON, or None when it was not JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or _code_for_status(status))
    message = str(error.get("message") or f"HTTP {status}")
    if status == 401 or code == "UNAUTHORIZED":
        return RobotAuthError(status, "UNAUTHORIZED", message, request=request)
    if code == "RATE_LIMIT_EXCEEDED":
        return RobotRateLimited(status, code, message, request=request, max_request=_int(error.get("max_request")),
                                interval=_int(error.get("interval")))
    if code == "INVALID_INPUT":
        return RobotInvalidInput(status, code, message, request=request, missing=_names(error.get("missing")),
                                 invalid=_names(error.get("invalid")))
    kind = _KINDS.get(code, RobotUnavailable if status >= 500 else RobotError)
    return kind(status, code, message, request=request)


def _code_for_status(status: int) -> str:
    return {401: "UNAUTHORIZED", 404: "NOT_FOUND", 409: "CONFLICT", 503: "MAINTENANCE"}.get(
        status, "INTERNAL_ERROR" if status >= 500 else "HTTP_ERROR")


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
