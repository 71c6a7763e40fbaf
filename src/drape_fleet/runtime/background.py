"""What the runtime's daemon threads do: host health probes, the activity flush, reaper passes.

Each loop ends when the runtime's ``closed`` event is set; a failing pass never ends a loop (the next pass
tries again). The flush is also what ``PreviewRuntime.flush_activity`` runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from docker.errors import APIError

from drape_fleet.runtime import activity
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.views import Observer


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


def watch_health(fleet: Fleet, closed: threading.Event) -> None:
    """Ask for the health checks that are due: hosts that went quiet (a cut network drops packets and refuses
    nothing, so only a check notices), hosts a call could not reach, down hosts whose backoff has passed. The
    checks run on the fleet's own threads, one at a time per host."""
    while not closed.wait(0.5):
        fleet.check_due()


def flush_buffered_activity(buffer: ActivityBuffer, observer: Observer, fleet: Fleet) -> int:
    """Write buffered activity to the hosts now. Returns how many containers were stamped.

    Each workspace's activity goes to every live container that holds it *now*, as the hosts list them at flush
    time (another process may have placed it again since this one last looked), tombstones included (a reaper at
    work re-reads the stamp before it removes one). What could not be written (a host that did not answer, a
    container gone between the listing and the write) goes back into the buffer for the next flush."""
    pending = buffer.take()
    if not pending:
        return 0
    views = observer.fresh_views()
    holders: dict[str, list[PreviewRecord]] = defaultdict(list)
    for view in views.values():
        for record in view.previews:
            if record.workspace in pending and record.live and not record.stopping and record.state != "created":
                holders[record.workspace].append(record)
    unknown = any(not v.reachable and fleet[v.name].available() for v in views.values())
    written = 0
    unwritten: dict[str, datetime] = {}
    for workspace, moment in pending.items():
        if not holders.get(workspace) and unknown:
            unwritten[workspace] = moment  # it may be on the host that did not answer
        for record in holders.get(workspace, []):
            try:
                activity.write_stamp(fleet[record.host], record.id, moment)
                buffer.wrote(workspace, record.id, moment)
                written += 1
            except (RuntimeFailure, APIError):
                unwritten[workspace] = moment
    if unwritten:
        buffer.put_back(unwritten)
    return written
