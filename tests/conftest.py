"""Shared fixtures. Lab fixtures bring the lab up themselves and FAIL (never skip) when it cannot start:
CI must not pass a lab test it did not run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drape_fleet.config import FleetConfig


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """tests/host checks a real host and runs only through `invoke verify` (which names the hosts)."""
    if collection_path.name == "host" and collection_path.parent.name == "tests":
        return not os.environ.get("DRAPE_VERIFY_FLEET_FILE")
    return None


@pytest.fixture(scope="session")
def lab_fleet() -> Iterator[FleetConfig]:
    """The main lab (3 hosts), brought up if needed. Left running afterwards: later runs reuse it."""
    from drape_fleet.lab import LabError
    from drape_fleet.lab.state import lab_state_settings
    from drape_fleet.lab.up import up

    settings = lab_state_settings()
    try:
        fleet = up(settings, lambda message: print(f"[lab] {message}"))
    except (LabError, Exception) as exc:  # any failure to start the lab is a test failure
        pytest.fail(f"the lab could not be brought up: {exc}", pytrace=False)
    yield fleet


@pytest.fixture(scope="session")
def provisioned_lab(lab_fleet: FleetConfig) -> Iterator[object]:
    """Every lab host provisioned once (deploys/site.py through `invoke provision`'s library call).
    Fails, never skips, when provisioning fails."""
    from drape_fleet.environments import LAB, load
    from drape_fleet.provision.preflight import ProvisionRefused
    from drape_fleet.provision.service import provision

    target = load(LAB)
    try:
        result = provision(target, every=True, note=lambda line: print(f"[provision] {line}"))
    except ProvisionRefused as exc:
        pytest.fail(f"provisioning the lab was refused: {exc}", pytrace=False)
    failed = [f"{run.host}: {run.error}" for run in result.runs if not run.ok]
    if failed:
        pytest.fail("provisioning the lab failed:\n" + "\n".join(failed), pytrace=False)
    yield target
