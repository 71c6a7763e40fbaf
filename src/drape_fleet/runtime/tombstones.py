"""When this process first saw each tombstone (a container a reaper renamed before removing it).

A tombstone is a reaper at work, or a stop in progress: placement waits for it to go. One that is still there
``lifecycle.TOMBSTONE_GRACE_S`` after this process first saw it was left by a reaper that died: placement
no longer waits for it, and the reaper removes it. The engines do not say when a container was renamed, so
the age is counted from this process's first sighting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.lifecycle import TOMBSTONE_GRACE_S
from drape_fleet.runtime.state import PreviewRecord


class TombstoneSightings:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}

    def stale(self, record: PreviewRecord) -> bool:
        """A tombstone seen for longer than the grace period (False for anything that is not a tombstone)."""
        if not record.tombstone:
            return False
        with self._lock:
            first = self._first_seen.setdefault(record.id, self._clock.monotonic())
        return self._clock.monotonic() - first > TOMBSTONE_GRACE_S

    def keep_only(self, present: Iterable[str]) -> None:
        """Forget the tombstones that are gone (ids not in ``present``)."""
        still = set(present)
        with self._lock:
            for gone in set(self._first_seen) - still:
                del self._first_seen[gone]
