"""Client-side rate limiting at the limits Fly documents, so a cutover never runs into 429s.

"Working with the Machines API", Rate Limits: 1 request per second per action (Create, Start, ...) per
identifier (machine ID or app), with short bursts up to 3 per second; Get Machine 5 per second, bursts up
to 10. One token bucket per (action, identifier): a call takes a token or waits until one is back.
Reservations may go negative, so concurrent callers queue in order instead of racing. The client refills
at 90% of the documented rate: its clock and Fly's differ by the network latency, and a request that
arrives a millisecond early is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1 (got {self.per_second}, {self.burst})")


def _documented_exceptions() -> dict[str, Rate]:
    return {"get": Rate(5.0, 10)}


@dataclass(frozen=True)
class RateLimits:
    default: Rate = Rate(1.0, 3)
    per_action: Mapping[str, Rate] = field(default_factory=_documented_exceptions)
    headroom: float = 0.9
    """Fraction of the documented refill rate the client uses."""

    def for_action(self, action: str) -> Rate:
        return self.per_action.get(action, self.default)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per (action, identifier). ``clock``/``sleep`` are injectable for tests."""

    def __init__(self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits = limits or RateLimits()
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def reserve(self, action: str, scope: str) -> float:
        """Take a token for one call; return how long the caller must wait before sending it."""
        rate = self.limits.for_action(action)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get((action, scope))
            if bucket is None:
                bucket = self._buckets[(action, scope)] = _Bucket(float(rate.burst), now)
            per_second = rate.per_second * self.limits.headroom
            bucket.tokens = min(float(rate.burst), bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
            bucket.tokens -= 1.0
            return 0.0 if bucket.tokens >= 0 else -bucket.tokens / per_second

    def acquire(self, action: str, scope: str) -> float:
        """Wait for a token; return the time waited."""
        delay = self.reserve(action, scope)
        if delay > 0:
            self._sleep(delay)
        return delay
