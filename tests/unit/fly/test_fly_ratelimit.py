"""The client's token buckets, on a clock the test moves (no waiting)."""

from __future__ import annotations

import pytest

from drape_fleet.fly import Rate, RateLimits
from drape_fleet.fly.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_documented_limits_burst_three_then_one_per_second_with_headroom() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert [limiter.acquire("stop", "m1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("stop", "m1") == pytest.approx(1 / 0.9)
    assert limiter.acquire("stop", "m1") == pytest.approx(1 / 0.9)
    assert limiter.acquire("stop", "m2") == 0.0  # per machine
    assert limiter.acquire("start", "m1") == 0.0  # per action


def test_get_machine_has_its_own_documented_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert sum(limiter.acquire("get", "m1") for _ in range(10)) == 0.0
    assert limiter.acquire("get", "m1") == pytest.approx(1 / 4.5)


def test_concurrent_reservations_queue_in_order() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(Rate(1.0, 1), {}, headroom=1.0), clock=clock, sleep=clock.sleep)
    assert [limiter.reserve("stop", "m") for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(headroom=1.0), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire("stop", "m")
    clock.now += 60
    assert [limiter.reserve("stop", "m") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="per_second > 0 and burst >= 1"):
        Rate(0, 3)
