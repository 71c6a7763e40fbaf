"""A fake Fly Machines API per test, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.fly_machines import DEFAULT_TOKEN, FakeFly
from fakes.fly_state import Grant
from fly_testing import APP, RecordedSleeps

from drape_fleet.fly import FlyClient, Rate, RateLimits

FAST_RATE = (20.0, 3)
FAST_GET_RATE = (100.0, 10)


@pytest.fixture()
def fly() -> Iterator[FakeFly]:
    tokens = {DEFAULT_TOKEN: Grant(owner="ops@drape.example"),
              "other-app-token": Grant(apps=frozenset({"another-app"})),
              "read-only-token": Grant(write=False),
              "FlyV1 fm2_macaroon": Grant(owner="deploy@drape.example")}
    with FakeFly(tokens, transition_s=0.05, rate=FAST_RATE, get_rate=FAST_GET_RATE) as fake:
        fake.world.add_app(APP)
        yield fake


@pytest.fixture()
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture()
def client(fly: FakeFly, sleeps: RecordedSleeps) -> Iterator[FlyClient]:
    """Real rate limiting and retries (the limits' shape as documented, faster, so the suite stays quick; the
    documented values have their own test); backoff and Retry-After sleeps are recorded instead of slept."""
    limits = RateLimits(Rate(*FAST_RATE), {"get": Rate(*FAST_GET_RATE)})
    with FlyClient(DEFAULT_TOKEN, base_url=fly.url, sleep=sleeps, limits=limits) as flyc:
        yield flyc
