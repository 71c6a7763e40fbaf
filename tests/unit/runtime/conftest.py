"""Fixtures for the runtime's unit tests: a small fleet (no engines, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet


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
