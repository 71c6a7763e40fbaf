"""Robot tests run against the local fake webservice (tests/support/fakes/robot.py) on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.robot import RobotFake
from fakes.robot_state import FakeKey, FakeServer, RobotFakeState
from fleets import OPS_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY_MD5, make_fleet

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.hetzner.robot._client import RetryPolicy


class FakeClock:
    """Time for the client and the fake alike: sleeping moves it, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def account(clock: FakeClock, **overrides: object) -> RobotFakeState:
    servers = [FakeServer(2100001, "ax1", "203.0.113.11",
                          rescue_host_keys=[{"fingerprint": RESCUE_HOST_KEY_MD5, "type": "ED25519", "size": 256}]),
               FakeServer(2100002, "ax2", "203.0.113.12"),
               FakeServer(2100009, "spare", "198.51.100.9", product="AX41-NVMe", dc="HEL1-DC2")]
    keys = [FakeKey("ops", OPS_KEY_MD5, data=OPS_KEY)]
    return RobotFakeState(servers=servers, keys=keys, clock=clock, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[RobotFake]:
    with RobotFake(account(clock)) as running:
        yield running


@pytest.fixture
def robot(fake: RobotFake, clock: FakeClock) -> Iterator[RobotClient]:
    client = RobotClient("robot-user", "robot-secret", base_url=fake.url, sleep=clock.sleep, clock=clock,
                         retry=RetryPolicy(rate_limit_budget_s=60.0))
    yield client
    client.close()


@pytest.fixture
def fleet() -> FleetConfig:
    return make_fleet()
