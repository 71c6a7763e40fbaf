"""Fleets for the provisioning unit tests: a production-shaped one and a lab-shaped one, built from data."""

from __future__ import annotations

import pytest
from provision_testdata import make_fleet

from drape_fleet.config import FleetConfig


@pytest.fixture
def fleet() -> FleetConfig:
    return make_fleet()


@pytest.fixture
def lab_like() -> FleetConfig:
    from drape_fleet.lab.fleet import LAB_PROVISIONING

    return make_fleet(environment={"name": "lab"}, provisioning=LAB_PROVISIONING,
                      network={"admin_allowlist": ["172.29.10.1/32"], "backend_addresses": ["172.29.20.1/32"]})
