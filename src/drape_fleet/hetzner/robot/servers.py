"""Servers on the Robot account: ``GET /server`` and ``GET /server/{server-number}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drape_fleet.hetzner.robot._client import RobotHttp
from drape_fleet.hetzner.robot.errors import RobotNotFound


@dataclass(frozen=True)
class Server:
    number: int
    name: str
    ip: str | None
    ipv6_net: str | None
    product: str
    dc: str
    status: str
    """``ready`` or ``in process``."""
    cancelled: bool
    paid_until: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Server:
        return cls(number=int(data["server_number"]), name=str(data.get("server_name") or ""),
                   ip=data.get("server_ip"), ipv6_net=data.get("server_ipv6_net"),
                   product=str(data.get("product") or ""), dc=str(data.get("dc") or ""),
                   status=str(data.get("status") or ""), cancelled=bool(data.get("cancelled")),
                   paid_until=data.get("paid_until"))

    def describe(self) -> str:
        return f"#{self.number} {self.name or '(no name)'} ({self.ip or 'no IPv4'}, {self.product}, {self.dc})"


class ServersClient:
    def __init__(self, http: RobotHttp) -> None:
        self._http = http

    def list(self) -> list[Server]:
        """Every server on the account (an account without servers answers 404 SERVER_NOT_FOUND: empty)."""
        try:
            answer = self._http.request("GET", "/server")
        except RobotNotFound:
            return []
        return sorted((Server.from_json(item["server"]) for item in answer or ()), key=lambda s: s.number)

    def get(self, number: int) -> Server:
        return Server.from_json(self._http.request("GET", f"/server/{number}")["server"])
