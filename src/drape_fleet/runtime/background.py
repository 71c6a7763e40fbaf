"""What the runtime's daemon threads do: host health probes, the activity flush, reaper passes.

Each loop ends when the runtime's ``closed`` event is set; a failing pass never ends a loop (the next pass
tries again). The flush is also what ``PreviewRuntime.flush_activity`` runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime

from docker.errors import APIError, NotFound

from drape_fleet.runtime import activity
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Engine, Fleet
from drape_fleet.runtime.errors import EngineError, HostUnavailable
from drape_fleet.runtime.tracking import Trackers
from drape_fleet.runtime.views import Observer

HEALTH_PING_S = 5.0
"""Healthy hosts are pinged this often by the background health thread."""


class Loops:
    """The runtime's long-lived daemon threads, joined (briefly) at close."""

    def __init__(self, closed: threading.Event) -> None:
        self._closed = closed
        self._threads: list[threading.Thread] = []

    def start(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def repeat(self, work: Callable[[], object], interval: Callable[[], float], name: str) -> None:
        """Run ``work`` every ``interval()`` seconds until closed; its failures are left to the next pass."""
        def loop() -> None:
            while not self._closed.wait(interval()):
                with contextlib.suppress(Exception):
                    work()

        self.start(loop, name)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)


def watch_health(fleet: Fleet, closed: threading.Event, on_recovered: Callable[[], None], clock: Clock) -> None:
    """Probe hosts in backoff when their delay has passed, and ping healthy ones every few seconds: a host
    whose network is cut (packets dropped, nothing refused) is otherwise noticed only by the next call."""
    lock = threading.Lock()
    in_flight: set[str] = set()
    last_ping = 0.0

    def probe(engine: Engine) -> None:
        try:
            if engine.probe():
                on_recovered()
        finally:
            with lock:
                in_flight.discard(engine.name)

    while not closed.wait(0.5):
        ping_healthy = clock.monotonic() - last_ping >= HEALTH_PING_S
        if ping_healthy:
            last_ping = clock.monotonic()
        for engine in fleet.engines():
            due = engine.available() and (not engine.health.healthy or ping_healthy)
            with lock:
                if not due or engine.name in in_flight:
                    continue
                in_flight.add(engine.name)
            fleet.submit(lambda e=engine: probe(e))  # type: ignore[misc]


def flush_buffered_activity(buffer: ActivityBuffer, trackers: Trackers, observer: Observer, fleet: Fleet) -> int:
    """Write buffered activity to the hosts now. Returns how many previews were stamped; what could not be
    written (host unavailable) goes back into the buffer for the next flush."""
    pending = buffer.take()
    if not pending:
        return 0
    written = 0
    unwritten: dict[str, datetime] = {}
    for workspace, moment in pending.items():
        where = trackers.location(workspace)
        if where is not None:
            targets = [where]
        else:  # not tracked here (started by another process): stamp whatever serves it
            found, _ = observer.find(workspace)
            targets = [(p.host, p.id) for p in found if p.serving]
        for host, container_id in targets:
            try:
                activity.write_stamp(fleet[host], container_id, moment)
                written += 1
            except NotFound:
                continue
            except (HostUnavailable, EngineError, APIError):
                unwritten[workspace] = moment
    if unwritten:
        buffer.put_back(unwritten)
    return written
