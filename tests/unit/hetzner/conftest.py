"""Hetzner tests run against local fakes on free loopback ports: the Cloud API's DNS part (zone drape.dev) and
the Robot webservice (tests/support/fakes/)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import hcloud._client
import pytest
from dns_testing import ZONE
from fake_clock import FakeClock
from fakes.hcloud_dns import DEFAULT_TOKEN, FakeCloudDns
from fakes.robot import RobotFake
from fleets import make_fleet
from robot_account import account

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.hetzner.robot._client import RetryPolicy

# -- Cloud DNS --------------------------------------------------------------------------------------


@pytest.fixture()
def api() -> Iterator[FakeCloudDns]:
    with FakeCloudDns({DEFAULT_TOKEN: True, "read-only-token": False}) as fake:
        fake.world.add_zone(ZONE)
        yield fake


@pytest.fixture()
def dns(api: FakeCloudDns) -> CloudDns:
    return CloudDns.connect(DEFAULT_TOKEN, api_endpoint=api.url)


@pytest.fixture()
def hcloud_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """hcloud backs off 1, 2, 4... s between retries: record those waits instead of sleeping them."""
    sleeps: list[float] = []
    monkeypatch.setattr(hcloud._client, "time", SimpleNamespace(sleep=sleeps.append))
    return sleeps


# -- Robot webservice -------------------------------------------------------------------------------


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
