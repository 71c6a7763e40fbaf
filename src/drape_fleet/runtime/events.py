"""What the runtime tells an observer as previews move: a new placement, every phase change, the wait line's
length, each reaper pass. The service's metrics (``drape_fleet.service.metrics``) and its phase stream listen
here; the runtime itself never depends on anyone listening.

Hooks are called on the runtime's own threads, some under its locks: an implementation records and returns
(a counter, a histogram, a wake-up), never blocks, and never calls back into the runtime. ``guarded`` wraps
an implementation so an exception in it is dropped instead of breaking a placement.
"""

from __future__ import annotations

import logging

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import ReapReport

log = logging.getLogger(__name__)


class RuntimeEvents:
    """The hooks, each doing nothing: subclass and override the ones you need."""

    def requested(self, workspace: str, *, project: str, framework: str, prewarm: bool) -> None:
        """A placement began for a workspace that had no preview on its way (``prewarm``: from
        ``project_opened``)."""

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        """The workspace's preview left ``old`` after ``seconds`` in it and is now ``new`` (``host``: where it
        is placed, once it is). ``placing`` -> ``starting`` is a placement on ``host``; -> ``failed`` a failure
        in ``old``; ``starting``/``installing``/``compiling`` -> ``placing`` its host died and it is placed
        again."""

    def queue_length(self, length: int) -> None:
        """How many placements wait for capacity now (after one joined or left the line)."""

    def reaped(self, report: ReapReport) -> None:
        """One reaper pass of this process finished."""


class _Guarded(RuntimeEvents):
    def __init__(self, inner: RuntimeEvents) -> None:
        self._inner = inner

    def requested(self, workspace: str, *, project: str, framework: str, prewarm: bool) -> None:
        try:
            self._inner.requested(workspace, project=project, framework=framework, prewarm=prewarm)
        except Exception:  # an observer never breaks the runtime
            log.exception("runtime event hook 'requested' failed")

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        try:
            self._inner.phase_changed(workspace, old, new, seconds=seconds, host=host)
        except Exception:
            log.exception("runtime event hook 'phase_changed' failed")

    def queue_length(self, length: int) -> None:
        try:
            self._inner.queue_length(length)
        except Exception:
            log.exception("runtime event hook 'queue_length' failed")

    def reaped(self, report: ReapReport) -> None:
        try:
            self._inner.reaped(report)
        except Exception:
            log.exception("runtime event hook 'reaped' failed")


NO_EVENTS = RuntimeEvents()


def guarded(events: RuntimeEvents | None) -> RuntimeEvents:
    """``events`` with every hook's exceptions logged and dropped; the no-op hooks when None."""
    if events is None or type(events) is RuntimeEvents:
        return NO_EVENTS
    return events if isinstance(events, _Guarded) else _Guarded(events)
