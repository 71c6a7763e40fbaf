"""Robot tests run against the local fake webservice (tests/support/fakes/robot.py) on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_clock import FakeClock
from fakes.robot import RobotFake
from fleets import make_fleet
from robot_account import account

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.hetzner.robot._client import RetryPolicy


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
