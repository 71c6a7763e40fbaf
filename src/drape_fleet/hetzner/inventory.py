"""The account's servers beside the fleet file: what `invoke fleet.robot-list` shows to help fill the inventory.

Pure: Robot's servers and the fleet in, one row per server out, saying which fleet host it is (matched by Robot
server number) and whether the fleet file's address agrees with Robot's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.robot.servers import Server


@dataclass(frozen=True)
class ServerRow:
    number: int
    name: str
    ip: str
    product: str
    dc: str
    status: str
    cancelled: bool
    fleet_host: str
    """The fleet host with this robot_server_number, or empty."""
    note: str
    """What disagrees between Robot and the fleet file, or empty."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def server_rows(servers: list[Server], fleet: FleetConfig | None) -> list[ServerRow]:
    hosts = {host.robot_server_number: host for host in (fleet.hosts if fleet else ()) if host.robot_server_number}
    by_address = {str(host.public_address): host.name for host in (fleet.hosts if fleet else ())}
    rows = []
    for server in servers:
        host = hosts.get(server.number)
        note = ""
        if host is not None and server.ip and str(host.public_address) != server.ip:
            note = f"fleet file says {host.name} is {host.public_address}, Robot says {server.ip}"
        elif host is None and server.ip in by_address:
            note = f"{by_address[server.ip]} has this address but robot_server_number is not {server.number}"
        rows.append(ServerRow(server.number, server.name, server.ip or "", server.product, server.dc,
                              server.status, server.cancelled, host.name if host else "", note))
    return rows


def missing_from_robot(servers: list[Server], fleet: FleetConfig) -> list[str]:
    """Fleet hosts whose robot_server_number Robot does not know (on this account)."""
    numbers = {server.number for server in servers}
    return [f"{host.name} (robot_server_number {host.robot_server_number})" for host in fleet.hosts
            if host.robot_server_number is not None and host.robot_server_number not in numbers]
