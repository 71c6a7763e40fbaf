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
    """A host's engine cannot be reached now (down, unreachable, or in backoff after failures)."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"host {host} is unavailable: {reason}")


class EngineError(RuntimeFailure):
    """A host's engine answered, but with an error the runtime cannot act on."""

    def __init__(self, host: str, status: int | None, message: str) -> None:
        self.host = host
        self.status = status
        super().__init__(f"host {host}: engine error{f' {status}' if status else ''}: {message}")
