"""Build pyinfra inventory data from a FleetConfig: inventories/*.py are two-line files over this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig

CONNECTOR = "openssh"
"""Hosts are reached through the system's OpenSSH client (drape_fleet.provision.connector): a hardened host
offers only post-quantum key exchanges, which pyinfra's paramiko-based ``@ssh`` connector cannot speak."""


def inventory_name(name: str) -> str:
    """The pyinfra inventory entry for fleet host ``name`` (pyinfra still calls the host ``name``)."""
    return f"@{CONNECTOR}/{name}"


def host_data(fleet: FleetConfig, name: str, *, fleet_file: Path, ssh_user: str,
              ssh_key: Path | None = None, known_hosts: Path | None = None) -> dict[str, Any]:
    """pyinfra host data for one fleet host: how to reach it, and which fleet it belongs to."""
    host = fleet.host(name)
    data: dict[str, Any] = {
        "ssh_hostname": str(host.public_address),
        "ssh_user": ssh_user,
        "ssh_port": fleet.environment.ssh_port,
        # Pinned host keys where we have them (lab: read from the host over the engine);
        # production pins them in inventories/known_hosts after the first contact.
        "ssh_strict_host_key_checking": "yes" if known_hosts else "accept-new",
        "fleet_file": str(fleet_file),
        "fleet_host": host.name,
        "fleet_environment": fleet.environment.name,
    }
    if ssh_user != "root":
        data["_sudo"] = True
    if ssh_key is not None:
        data["ssh_key"] = str(ssh_key)
    if known_hosts is not None:
        data["ssh_known_hosts_file"] = str(known_hosts)
    return data


def groups(fleet: FleetConfig, **connection: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """One pyinfra group per role (``preview``, ``canary``), each host with its data."""
    result: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for host in fleet.hosts:
        for role in host.roles:
            result.setdefault(role, []).append((inventory_name(host.name), host_data(fleet, host.name, **connection)))
    return result
