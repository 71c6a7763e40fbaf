"""Per-caller rate limits: a token bucket per caller and worker process (``rate_per_s`` sustained, ``burst`` at
once).

Per process, not fleet-wide: a caller's ceiling is its rate times the worker processes of the instances it
reaches (``service.workers`` each; the backend sticks to one instance and fails over). A fleet-wide count would
need a shared store on the request path, which the service deliberately does not have; the limit is there to
stop one caller's flood from starving the others, which a per-process bucket does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drape_fleet.config.service import CallerLimits


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def take(self, caller: str, limits: CallerLimits) -> float | None:
        """Spend one request of ``caller``'s bucket: None when allowed, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                bucket = self._buckets[caller] = _Bucket(tokens=float(limits.burst), updated=now)
            bucket.tokens = min(float(limits.burst), bucket.tokens + (now - bucket.updated) * limits.rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / limits.rate_per_s
