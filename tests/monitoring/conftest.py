"""Fixtures for the monitoring tests: the lab's and production's fleets as the deploys see them, secrets made up
for the tests, and the real promtool and amtool (./dev unpacks them into the venv)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from drape_fleet.config import FleetConfig, load_fleet
from drape_fleet.config.secrets import Secrets
from drape_fleet.environments import FleetTarget
from drape_fleet.lab.fleet import lab_fleet
from drape_fleet.lab.settings import LabSettings
from drape_fleet.monitoring.receiver import AlertReceiver, receiver_endpoint
from drape_fleet.paths import project_root

FAKE_SECRETS = {
    "ops_smtp_password": "smtp-password-for-tests",
    "ops_pager_url": "https://pager.example.invalid/hooks/0123456789",
    "heartbeat_url": "https://heartbeat.example.invalid/ping/abcdef",
}


@pytest.fixture(scope="session")
def production() -> FleetConfig:
    return load_fleet(project_root() / "config" / "production.toml")


@pytest.fixture(scope="session")
def lab() -> FleetConfig:
    return lab_fleet(LabSettings())


@pytest.fixture
def secrets() -> Secrets:
    return Secrets(monitoring={name: SecretStr(value) for name, value in FAKE_SECRETS.items()}, source="(test)")


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """The path of promtool or amtool: FAILS (never skips) without them, saying how to get them."""

    def find(name: str) -> str:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.exists() else shutil.which(name)
        if not found:
            pytest.fail(f"{name} is missing: `./dev test` unpacks it from Debian's packages into .venv/bin",
                        pytrace=False)
        return found

    return find


@pytest.fixture(scope="session")
def monitored_lab(provisioned_lab: FleetTarget) -> FleetTarget:
    """The lab, provisioned: deploys/site.py includes the monitoring deploys (Prometheus and Alertmanager on the
    host the lab's fleet file names)."""
    if provisioned_lab.fleet.monitoring is None:
        pytest.fail("the lab's fleet file has no [monitoring] section: run `invoke lab.up` again", pytrace=False)
    return provisioned_lab


@pytest.fixture(scope="session")
def alert_receiver(monitored_lab: FleetTarget) -> Iterator[AlertReceiver]:
    """The lab's alert receivers (every receiver of the lab's fleet file posts here, on this machine's private lab
    address). Fails, never skips, when that address cannot be listened on."""
    assert monitored_lab.fleet.monitoring is not None
    address, port = receiver_endpoint(monitored_lab.fleet.monitoring)
    try:
        receiver = AlertReceiver(address, port)
    except OSError as exc:
        pytest.fail(f"cannot listen on {address}:{port} as the lab's alert receiver: {exc} "
                    "(is `invoke monitoring.receiver` running?)", pytrace=False)
    with receiver:
        yield receiver
