"""What the runtime raises. Every message says what happened and, where there is one, what to do."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of everything the runtime raises on purpose."""


class BadRequest(RuntimeFailure, ValueError):
    """The caller asked for something that can never succeed (checked before any host is contacted)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownFramework(BadRequest):
    pass


class RequestTooLarge(BadRequest):
    """More resources than the largest allowed preview, or than any host has."""


class WorkspaceConflict(RuntimeFailure):
    """The workspace already has a preview that belongs to another user."""


class QueueFull(RuntimeFailure):
    """Every host is full and the wait queue is at its limit: try again later."""


class UnknownHost(RuntimeFailure, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown host"


class HostUnavailable(RuntimeFailure):
    """A host's engine could not be asked now. Two kinds, told apart because only one of them says anything
    about the host: ``HostDown`` (its health checks failed) and ``CallFailed`` (this one call did not get an
    answer within its budget; the host may be fine)."""

    def __init__(self, host: str, reason: str, *, message: str | None = None) -> None:
        self.host = host
        self.reason = reason
        super().__init__(message or f"host {host} is unavailable: {reason}")


class HostDown(HostUnavailable):
    """The host's health checks failed: calls are refused at once until a health check succeeds again."""


class CallFailed(HostUnavailable):
    """One call did not get an answer (timed out, connection refused or reset, too many calls in flight). It
    counts against nothing but itself: the host's health is decided by its health checks, which this failure
    triggers."""

    def __init__(self, host: str, what: str, reason: str) -> None:
        self.what = what
        super().__init__(host, reason, message=f"host {host}: {what} got no answer ({reason}); the host's "
                                               "health is being checked")


class EngineError(RuntimeFailure):
    """A host's engine answered, but with an error the runtime cannot act on."""

    def __init__(self, host: str, status: int | None, message: str) -> None:
        self.host = host
        self.status = status
        super().__init__(f"host {host}: engine error{f' {status}' if status else ''}: {message}")
