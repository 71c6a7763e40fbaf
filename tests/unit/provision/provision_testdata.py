"""Fleets and fixture files for the provisioning unit tests (imported by the tests and the conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"


def fleet_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "environment": {"name": "production"},
        "network": {"admin_allowlist": ["203.0.113.7/32"], "backend_addresses": ["10.0.0.2/32"]},
        "hosts": [
            {"name": "ax1", "public_address": "203.0.113.11", "private_address": "10.0.0.11",
             "robot_server_number": 2100001, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}},
            {"name": "ax2", "public_address": "203.0.113.12", "private_address": "10.0.0.12",
             "robot_server_number": 2100002, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}},
        ],
    }
    data.update(overrides)
    return data


def make_fleet(**overrides: Any) -> FleetConfig:
    return validate_fleet(fleet_data(**overrides), source="(test)")


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()
