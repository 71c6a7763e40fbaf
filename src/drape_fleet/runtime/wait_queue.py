"""The bounded FIFO wait queue: how a placement waits when every host is full.

First come, first served by request order (``Tracker.seq``), whichever thread gets there first. Only the head
looks for a host; it retries on every local release (``wake``) and every ``QUEUE_POLL_S`` even without one,
because other backend processes free capacity too. A request gives up (phase ``failed``) after
``queue_timeout_s``, and a newcomer is refused with ``QueueFull`` while ``queue_limit`` requests wait. A
pre-warm never queues. The line itself is kept with the trackers (``tracking``).
"""

from __future__ import annotations

import threading

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.tracking import Tracker, Trackers

QUEUE_POLL_S = 1.0
"""The queue's head retries this often even without a local wake-up: other processes free capacity too."""


class WaitQueue:
    def __init__(self, trackers: Trackers, settings: RuntimeSettings, closed: threading.Event,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._trackers = trackers
        self._settings = settings
        self._closed = closed
        self._clock = clock

    def full(self) -> bool:
        """Requests are waiting and their number is at the limit: a new ``start`` is refused."""
        length = self._trackers.line_length()
        return length > 0 and length >= self._settings.queue_limit

    def length(self) -> int:
        return self._trackers.line_length()

    def wake(self) -> None:
        """Capacity may have been freed here: the head looks again now."""
        with self._trackers.changed:
            self._trackers.changed.notify_all()

    def wait_turn(self, tracker: Tracker, generation: int, deadline: float, *, queue_if_busy: bool) -> bool:
        """FIFO fairness: when others are already waiting, a newcomer queues behind them. False: give up."""
        with self._trackers.changed:
            if self._trackers.in_line(tracker):
                return self._wait_head(tracker, generation, deadline)
            if queue_if_busy and self._trackers.line_length() and not tracker.prewarm:
                self._trackers.join_line(tracker, generation)
                return self._wait_head(tracker, generation, deadline)
            return True

    def wait_capacity(self, tracker: Tracker, generation: int, deadline: float) -> bool:
        """No host has room: join the line (or fail when it is at its limit), or, as its head, wait for a
        release or the poll interval before looking again. False: give up."""
        with self._trackers.changed:
            if not self._trackers.in_line(tracker):
                if self._trackers.line_length() >= self._settings.queue_limit:
                    self._trackers.fail(tracker, generation, f"every host is full and the queue is at its limit "
                                                             f"({self._settings.queue_limit})")
                    return False
                self._trackers.join_line(tracker, generation)
                return self._wait_head(tracker, generation, deadline)
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                self._fail_waited(tracker, generation)
                return False
            self._trackers.changed.wait(timeout=min(remaining, QUEUE_POLL_S))
            return self._trackers.current(tracker, generation) and not self._closed.is_set()

    def _wait_head(self, tracker: Tracker, generation: int, deadline: float) -> bool:
        while True:
            if not self._trackers.current(tracker, generation) or self._closed.is_set():
                return False
            if self._trackers.first_in_line(tracker):
                return True
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                self._fail_waited(tracker, generation)
                return False
            self._trackers.changed.wait(timeout=min(remaining, QUEUE_POLL_S))

    def give_up(self, tracker: Tracker, generation: int) -> None:
        """The request's deadline passed while it waited in line."""
        self._fail_waited(tracker, generation)

    def _fail_waited(self, tracker: Tracker, generation: int) -> None:
        waited = self._clock.monotonic() - (tracker.queued_at or tracker.requested_at)
        self._trackers.fail(tracker, generation, f"no capacity on any host within {waited:.0f} s "
                                                 f"(queue timeout {self._settings.queue_timeout_s:.0f} s)")
