"""The runtime's one clock: wall time for what is written to hosts and compared with their timestamps (labels,
activity stamps), monotonic time for deadlines and backoff. Passed to everything that reads the time, so tests
move time forward instead of waiting for it.

Waits themselves (``Event.wait``, ``Condition.wait``, a future's ``result``) still block in real time: a
deadline checked against this clock decides when to give up, the real timeout only bounds each wait.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:
        """Wall time, UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        return time.monotonic()


SYSTEM_CLOCK = Clock()
