"""pyinfra's view of an environment: one group per role, each host with the data our connector and the
deploys read. inventories/*.py are one-line files over ``groups``; the connector turns a host's data back
into the same ``SshTarget`` everything else uses (``ssh_target``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drape_fleet.environments import FleetTarget, environment
from drape_fleet.ssh import SshTarget

CONNECTOR = "openssh"
"""Hosts are reached through the system's OpenSSH client (drape_fleet.provision.connector): a hardened host
offers only post-quantum key exchanges, which pyinfra's paramiko-based ``@ssh`` connector cannot speak."""


def inventory_name(name: str) -> str:
    """The pyinfra inventory entry for fleet host ``name`` (pyinfra still calls the host ``name``)."""
    return f"@{CONNECTOR}/{name}"


def host_data(target: FleetTarget, name: str) -> dict[str, Any]:
    """pyinfra host data for one fleet host: how to reach it, and which fleet it belongs to."""
    ssh = target.ssh_target(target.fleet.host(name))
    data: dict[str, Any] = {
        "ssh_hostname": ssh.hostname,
        "ssh_user": ssh.user,
        "ssh_port": ssh.port,
        "ssh_key": str(ssh.key),
        "ssh_known_hosts_file": str(ssh.known_hosts),
        "fleet_file": str(target.env.fleet_file.resolve()),
        "fleet_host": name,
        "fleet_environment": target.environment,
    }
    if ssh.user != "root":
        data["_sudo"] = True
    return data


def ssh_target(data: Any, default_hostname: str) -> SshTarget:
    """The ``SshTarget`` a host's data describes (``--user root`` on the pyinfra command line wins)."""
    return SshTarget(hostname=str(data.get("ssh_hostname") or default_hostname), user=str(data.get("ssh_user")),
                     port=int(data.get("ssh_port") or 22), key=Path(str(data.get("ssh_key"))),
                     known_hosts=Path(str(data.get("ssh_known_hosts_file"))), alias=data.get("fleet_host"))


def groups(target: FleetTarget) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """One pyinfra group per role (``preview``, ``canary``), each host with its data."""
    result: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for host in target.fleet.hosts:
        for role in host.roles:
            result.setdefault(role, []).append((inventory_name(host.name), host_data(target, host.name)))
    return result


def environment_groups(name: str | None = None) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The groups of environment ``name`` (default ``$DRAPE_ENV``, else production)."""
    return groups(environment(name).load())
