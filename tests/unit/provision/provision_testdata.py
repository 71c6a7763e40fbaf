"""Fleets and fixture files for the provisioning unit tests (imported by the tests and the conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet
from drape_fleet.environments import Environment, FleetTarget

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"


def fleet_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "environment": {"name": "production"},
        "network": {"admin_allowlist": ["203.0.113.7/32"], "backend_addresses": ["10.0.0.2/32"]},
        "provisioning": {"firewall": {"private_network": ["10.0.0.0/24"]}},
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


ED25519_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIBLi7uZVZ5jfqIq0q6MgoYB6fKuUtPVnRz8WlYbRo6dB"
"""A well-formed ed25519 public key (made for these tests; no host holds its private half)."""


def make_target(fleet: FleetConfig, directory: Path, *, pinned: bool = True, key: bool = True) -> FleetTarget:
    """``fleet`` as an ops environment whose files live in ``directory``: a key file ops offer, and every
    host's key pinned (unless told otherwise)."""
    ssh_key = directory / "id_ed25519"
    known_hosts = directory / "fleet.known_hosts"
    if key:
        ssh_key.write_text("(private key)\n")
    if pinned:
        known_hosts.write_text("".join(f"{h.public_address},{h.name} ssh-ed25519 {ED25519_KEY}\n" for h in fleet.hosts))
    env = Environment(name=fleet.environment.name, fleet_file=directory / "fleet.toml", state_dir=directory,
                      pki_dir=directory / "pki", known_hosts=known_hosts, ssh_key=ssh_key, ssh_user=None)
    return FleetTarget(env, fleet)
