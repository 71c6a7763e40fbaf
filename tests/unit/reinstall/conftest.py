"""The flow under test: the fake Robot webservice (a real HTTP server on loopback), the fake server behind the
SSH seam (world.py), a fake clock, and a progress recorder (reinstall_bench.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_clock import FakeClock
from fakes.robot import RobotFake
from fleets import OPS_KEY
from reinstall_bench import Bench, Recorder
from robot_account import account
from world import World

from drape_fleet.hetzner.robot import RobotClient


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    clock, world = FakeClock(), World()
    state = account(clock, on_reset=world.on_reset)
    with RobotFake(state) as fake:
        robot = RobotClient("robot-user", "robot-secret", base_url=fake.url, sleep=clock.sleep, clock=clock)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"203.0.113.12 {OPS_KEY}\n")
        yield Bench(clock, world, fake, robot, Recorder(), tmp_path / "state", known_hosts)
        robot.close()
