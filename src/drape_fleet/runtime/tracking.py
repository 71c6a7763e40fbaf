"""What this process remembers about each workspace's preview: a *tracker* per workspace (its request, phase,
host, published port) and the wait line, under one lock; and the ``PreviewStatus`` a tracker reports.

Nothing here is the truth (the engines are, see ``views``); trackers save round trips and let callers wait.
Every change a worker thread makes carries the *generation* it started with: once the workspace was stopped,
placed again or taken over, the worker's generation is outdated and its writes are ignored.

The wait line lives here, not in ``wait_queue``, because a tracker's phase and its place in line change together
under the same lock: a status never shows a failed preview with a queue position. ``wait_queue`` is how a
placement waits in that line. No I/O in this module.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime.engines import Fleet
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus

FAILED_KEPT_S = 60.0
"""A failed preview's container is kept this long so its logs can be read, then the reaper removes it."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tracker:
    request: PreviewRequest
    phase: Phase
    since: datetime
    requested_at: float
    host: str | None = None
    container_id: str | None = None
    public_port: int | None = None
    error: str | None = None
    created: datetime | None = None
    queued_at: float | None = None
    generation: int = 0
    prewarm: bool = False
    seq: int = 0
    """Request order: the wait queue is first come, first served by this, whatever thread gets there first."""


def preview_url(config: FleetConfig, host: str | None, port: int | None) -> str | None:
    """Where the backend proxies to: the host's private address and the preview's published port."""
    if host is None or port is None:
        return None
    return f"http://{config.host(host).private_address}:{port}"


class Trackers:
    """Every workspace this process is placing, following or serving, and the wait line. Thread-safe: ``lock``
    (re-entrant) guards both, and ``changed`` is notified on every phase change and every departure from line."""

    def __init__(self, config: FleetConfig, fleet: Fleet) -> None:
        self._config = config
        self._fleet = fleet
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._by_workspace: dict[str, Tracker] = {}
        self._line: list[Tracker] = []
        self._sequence = itertools.count(1)

    # -- which tracker a workspace has ------------------------------------------------------------

    def get(self, workspace: str) -> Tracker | None:
        with self.lock:
            return self._by_workspace.get(workspace)

    def all(self) -> list[Tracker]:
        with self.lock:
            return list(self._by_workspace.values())

    def next_seq(self) -> int:
        """The next request's place in the first-come, first-served order."""
        with self.lock:
            return next(self._sequence)

    def put(self, tracker: Tracker) -> None:
        """Make ``tracker`` the workspace's tracker (a new request: any earlier one is final, not in line)."""
        with self.lock:
            self._by_workspace[tracker.request.workspace] = tracker

    def supersede(self, tracker: Tracker) -> None:
        """Make ``tracker`` the workspace's tracker in place of a live one: the old one's workers stop (their
        tracker is no longer current) and it leaves the line."""
        with self.lock:
            old = self._by_workspace.get(tracker.request.workspace)
            if old is not None:
                tracker.generation = old.generation + 1
                self.leave_line(old)
            self._by_workspace[tracker.request.workspace] = tracker
            self.changed.notify_all()

    def forget(self, workspace: str) -> Tracker | None:
        """Drop the workspace's tracker (an explicit stop): its workers stop, it leaves the line."""
        with self.lock:
            tracker = self._by_workspace.pop(workspace, None)
            if tracker is not None:
                tracker.generation += 1
                self.leave_line(tracker)
            self.changed.notify_all()
            return tracker

    def forget_container(self, workspace: str, container_id: str) -> bool:
        """Drop the workspace's tracker if it follows ``container_id`` (that container is gone)."""
        with self.lock:
            tracker = self._by_workspace.get(workspace)
            if tracker is None or tracker.container_id != container_id:
                return False
            del self._by_workspace[workspace]
            tracker.generation += 1
            return True

    def forget_failed(self, *, older_than_s: float, now: datetime) -> None:
        """Failed previews are remembered for a while (their error), then forgotten."""
        with self.lock:
            for workspace, tracker in list(self._by_workspace.items()):
                if tracker.phase is Phase.FAILED and (now - tracker.since).total_seconds() > older_than_s:
                    del self._by_workspace[workspace]

    def kept_failure(self, record: PreviewRecord) -> bool:
        """A failed preview's container, kept a while so its logs can be read (the reaper removes it later)."""
        with self.lock:
            tracker = self._by_workspace.get(record.workspace)
            if tracker is None or tracker.container_id != record.id or tracker.phase is not Phase.FAILED:
                return False
            return (_now() - tracker.since).total_seconds() < FAILED_KEPT_S

    def location(self, workspace: str) -> tuple[str, str] | None:
        """(host, container id) of the workspace's container, when this process knows it."""
        with self.lock:
            tracker = self._by_workspace.get(workspace)
            if tracker is None or tracker.host is None or tracker.container_id is None:
                return None
            return tracker.host, tracker.container_id

    # -- phases -----------------------------------------------------------------------------------

    def current(self, tracker: Tracker, generation: int) -> bool:
        """Is a worker that started at ``generation`` still in charge of ``tracker``?"""
        with self.lock:
            return (tracker.generation == generation
                    and self._by_workspace.get(tracker.request.workspace) is tracker)

    def set_phase(self, tracker: Tracker, generation: int, phase: Phase) -> None:
        with self.lock:
            if tracker.generation != generation or tracker.phase is phase:
                return
            tracker.phase = phase
            tracker.since = _now()
            if phase is not Phase.FAILED:  # a re-placement keeps saying why it is placing again
                tracker.error = None if phase is not Phase.PLACING else tracker.error
            self.changed.notify_all()

    def fail(self, tracker: Tracker, generation: int, why: str) -> None:
        with self.lock:
            if tracker.generation != generation:
                return
            self.leave_line(tracker)
            tracker.error = why
            self.set_phase(tracker, generation, Phase.FAILED)

    # -- the wait line ----------------------------------------------------------------------------

    def join_line(self, tracker: Tracker, generation: int) -> None:
        with self.lock:
            bisect.insort(self._line, tracker, key=lambda t: t.seq)
            tracker.queued_at = time.monotonic()
            self.set_phase(tracker, generation, Phase.QUEUED)

    def leave_line(self, tracker: Tracker) -> None:
        with self.lock:
            if tracker in self._line:
                self._line.remove(tracker)
                self.changed.notify_all()

    def in_line(self, tracker: Tracker) -> bool:
        with self.lock:
            return tracker in self._line

    def first_in_line(self, tracker: Tracker) -> bool:
        with self.lock:
            return bool(self._line) and self._line[0] is tracker

    def line_length(self) -> int:
        with self.lock:
            return len(self._line)

    # -- what a tracker reports -------------------------------------------------------------------

    def status(self, tracker: Tracker) -> PreviewStatus:
        with self.lock:
            request = tracker.request
            phase = tracker.phase
            error = tracker.error
            if tracker.host is not None and phase is Phase.READY and not self._fleet[tracker.host].available():
                phase = Phase.LOST
                error = f"host {tracker.host} is not answering: {self._fleet[tracker.host].health.last_error}"
            position = self._line.index(tracker) + 1 if tracker in self._line else None
            started = tracker.queued_at if position is not None and tracker.queued_at else tracker.requested_at
            return PreviewStatus(workspace=request.workspace, user=request.user, project=request.project,
                                 framework=request.framework, phase=phase, since=tracker.since, host=tracker.host,
                                 container_id=tracker.container_id,
                                 url=preview_url(self._config, tracker.host, tracker.public_port),
                                 queue_position=position, waited_s=round(time.monotonic() - started, 3), error=error,
                                 created=tracker.created)

    def wait_final(self, workspace: str, timeout: float, closed: threading.Event) -> PreviewStatus:
        """Block until the workspace's preview is ready, failed or lost, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                tracker = self._by_workspace.get(workspace)
                if tracker is None:
                    raise KeyError(f"workspace {workspace!r} has no preview being started")
                status = self.status(tracker)
                remaining = deadline - time.monotonic()
                if status.phase.final or remaining <= 0 or closed.is_set():
                    return status
                self.changed.wait(timeout=min(remaining, 1.0))
