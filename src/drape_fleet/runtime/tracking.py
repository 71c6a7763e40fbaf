"""What this process remembers about each workspace's preview: a *tracker* per workspace (its request, phase,
host, published port) and the wait line, under one lock; and the ``PreviewStatus`` a tracker reports.

Nothing here is the truth (the engines are, see ``views``); trackers save round trips and let callers wait.
Every change a worker thread makes carries the *generation* it started with: once the workspace was stopped,
placed again or taken over, the worker's generation is outdated and its writes are ignored. Trackers change
only through ``Trackers``' methods, which check that generation under the lock; others read them.

The wait line lives here, not in ``wait_queue``, because a tracker's phase and its place in line change together
under the same lock: a status never shows a failed preview with a queue position. ``wait_queue`` is how a
placement waits in that line. No I/O in this module.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus

FAILED_KEPT_S = 60.0
"""A failed preview's container is kept this long so its logs can be read, then the reaper removes it."""


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
    missing: tuple[str, ...] = ()
    """Parts of the request this process could not recover when it took the preview over (``projects``): it is
    then not placed again by this process, only reported lost."""


class KeyedLocks:
    """A lock per key (a workspace), existing only while someone holds or waits for it: the table never grows
    with the keys callers pass, whatever they pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            entry = self._locks.setdefault(key, (threading.Lock(), [0]))
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1][0] -= 1
                if entry[1][0] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._locks)


def preview_url(config: FleetConfig, host: str | None, port: int | None) -> str | None:
    """Where the backend proxies to: the host's private address and the preview's published port."""
    if host is None or port is None:
        return None
    return f"http://{config.host(host).private_address}:{port}"


class Trackers:
    """Every workspace this process is placing, following or serving, and the wait line. Thread-safe: ``lock``
    (re-entrant) guards both, and ``changed`` is notified on every phase change and every departure from line."""

    def __init__(self, config: FleetConfig, fleet: Fleet, clock: Clock = SYSTEM_CLOCK) -> None:
        self._config = config
        self._fleet = fleet
        self._clock = clock
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

    def start(self, request: PreviewRequest, *, prewarm: bool) -> Tracker:
        """A new request for a workspace that has no live preview: placing, next in request order."""
        with self.lock:
            tracker = Tracker(request=request, phase=Phase.PLACING, since=self._clock.now(),
                              requested_at=self._clock.monotonic(), prewarm=prewarm, seq=next(self._sequence))
            self._by_workspace[request.workspace] = tracker
            return tracker

    def replace(self, request: PreviewRequest) -> Tracker:
        """A replacement being placed for the workspace's running preview (a move): the old tracker's workers
        stop."""
        with self.lock:
            tracker = Tracker(request=request, phase=Phase.PLACING, since=self._clock.now(),
                              requested_at=self._clock.monotonic(), seq=next(self._sequence))
            self._supersede(tracker)
            return tracker

    def take_over(self, request: PreviewRequest, record: PreviewRecord, *, ready: bool,
                  missing: tuple[str, ...] = ()) -> Tracker:
        """Follow a container found on a host (another process's, or from before a restart)."""
        with self.lock:
            tracker = Tracker(request=request, phase=Phase.READY if ready else Phase.STARTING,
                              since=self._clock.now(), requested_at=self._clock.monotonic(), host=record.host,
                              container_id=record.id, public_port=record.public_port, created=record.created,
                              missing=missing)
            self._supersede(tracker)
            return tracker

    def join(self, tracker: Tracker, *, prewarm: bool) -> PreviewStatus | None:
        """A new request for a workspace whose preview is on its way: its status (a start is no longer a mere
        pre-warm); None when that preview is not on its way any more."""
        with self.lock:
            if not tracker.phase.active:
                return None
            if not prewarm:
                tracker.prewarm = False
            return self.status(tracker)

    def _supersede(self, tracker: Tracker) -> None:
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

    def forget_failed(self, *, older_than_s: float) -> None:
        """Failed previews are remembered for a while (their error), then forgotten."""
        now = self._clock.now()
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
            return (self._clock.now() - tracker.since).total_seconds() < FAILED_KEPT_S

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
            tracker.since = self._clock.now()
            if phase not in (Phase.FAILED, Phase.LOST, Phase.PLACING):  # those say why (a re-placement: why again)
                tracker.error = None
            self.changed.notify_all()

    def fail(self, tracker: Tracker, generation: int, why: str) -> None:
        with self.lock:
            if tracker.generation != generation:
                return
            self.leave_line(tracker)
            tracker.error = why
            self.set_phase(tracker, generation, Phase.FAILED)

    def note(self, tracker: Tracker, generation: int, why: str) -> None:
        """Why the worker is still at it (a host that does not answer, a collision), shown in the status."""
        with self.lock:
            if tracker.generation == generation and tracker.phase.active:
                tracker.error = why

    def lose(self, tracker: Tracker, generation: int, why: str) -> None:
        """The preview's host went down and this process cannot place it again: ``lost`` (the next start does)."""
        with self.lock:
            if tracker.generation != generation:
                return
            self.leave_line(tracker)
            tracker.error = why
            self.set_phase(tracker, generation, Phase.LOST)

    def complete(self, tracker: Tracker, generation: int, request: PreviewRequest) -> None:
        """The parts of the request that were missing, recovered (``projects.completed``)."""
        with self.lock:
            if tracker.generation == generation:
                tracker.request, tracker.missing = request, ()

    def started(self, tracker: Tracker, generation: int, record: PreviewRecord) -> bool:
        """The preview's container runs on ``record.host``: follow it there. False when the worker that started
        it is no longer in charge (the workspace was stopped or placed anew meanwhile)."""
        with self.lock:
            if not self.current(tracker, generation):
                return False
            tracker.host, tracker.container_id = record.host, record.id
            tracker.public_port, tracker.created = record.public_port, record.created
            self.set_phase(tracker, generation, Phase.STARTING)
            self.leave_line(tracker)
            return True

    def published(self, tracker: Tracker, generation: int, port: int | None) -> None:
        """The port the engine published for the preview, learned after its start."""
        with self.lock:
            if tracker.generation == generation:
                tracker.public_port = port

    def place_again(self, tracker: Tracker, generation: int, why: str) -> int | None:
        """The preview's host died before it was ready: forget that container and place the same request again.
        Returns the generation of the new placement; None when the worker is no longer in charge."""
        with self.lock:
            if not self.current(tracker, generation):
                return None
            tracker.generation += 1
            tracker.host = tracker.container_id = None
            tracker.public_port = None
            tracker.error = why
            self.set_phase(tracker, tracker.generation, Phase.PLACING)
            return tracker.generation

    # -- the wait line ----------------------------------------------------------------------------

    def join_line(self, tracker: Tracker, generation: int) -> None:
        with self.lock:
            bisect.insort(self._line, tracker, key=lambda t: t.seq)
            tracker.queued_at = self._clock.monotonic()
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
                error = (f"host {tracker.host} is not answering its health checks: "
                         f"{self._fleet[tracker.host].health.last_error}")
            position = self._line.index(tracker) + 1 if tracker in self._line else None
            started = tracker.queued_at if position is not None and tracker.queued_at else tracker.requested_at
            waited = round(self._clock.monotonic() - started, 3)
            return PreviewStatus(workspace=request.workspace, user=request.user, project=request.project,
                                 framework=request.framework, phase=phase, since=tracker.since, host=tracker.host,
                                 container_id=tracker.container_id,
                                 url=preview_url(self._config, tracker.host, tracker.public_port),
                                 queue_position=position, waited_s=waited, error=error,
                                 created=tracker.created)

    def wait_final(self, workspace: str, timeout: float, closed: threading.Event) -> PreviewStatus:
        """Block until the workspace's preview is ready, failed or lost, or ``timeout`` passes."""
        deadline = self._clock.monotonic() + timeout
        with self.changed:
            while True:
                tracker = self._by_workspace.get(workspace)
                if tracker is None:
                    raise KeyError(f"workspace {workspace!r} has no preview being started")
                status = self.status(tracker)
                remaining = deadline - self._clock.monotonic()
                if status.phase.final or remaining <= 0 or closed.is_set():
                    return status
                self.changed.wait(timeout=min(remaining, 1.0))
