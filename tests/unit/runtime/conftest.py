"""Fixtures for the runtime's unit tests: a small fleet (no engines, no I/O), and a world of fake engines
(``runtime_testkit``) for the orchestration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_testkit import World

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet

HERE = Path(__file__).parent


def fleet_data(**runtime: Any) -> dict[str, Any]:
    return {
        "environment": {"name": "lab"},
        "network": {"admin_allowlist": ["10.0.9.1/32"], "backend_addresses": ["10.0.0.2/32"]},
        "hosts": [
            {"name": f"ax{i}", "public_address": f"192.0.2.{10 + i}", "private_address": f"10.0.0.{10 + i}",
             "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}
            for i in (1, 2, 3)
        ],
        "runtime": runtime,
    }


@pytest.fixture(name="fleet_data")
def fleet_data_factory() -> Any:
    return fleet_data


@pytest.fixture
def fleet() -> FleetConfig:
    return validate_fleet(fleet_data(), source="(test)")


@pytest.fixture
def world() -> Iterator[World]:
    """Three fake engines on loopback, a clock the test moves; every runtime made over it is closed after."""
    made = World()
    yield made
    made.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A bound on every runtime unit test: a placement that never ends fails the test instead of hanging the run."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.timeout(30))
