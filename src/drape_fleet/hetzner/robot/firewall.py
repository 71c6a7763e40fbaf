"""Robot's switch-port firewall (``/firewall/{server-number}``): read it, and apply a rule set (form-encoded,
as built by ``drape_fleet.hetzner.robot_firewall``), waiting until Robot reports it active (20-30 s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drape_fleet.hetzner.robot._client import RobotHttp
from drape_fleet.hetzner.robot.errors import RobotConflict


class FirewallClient:
    def __init__(self, http: RobotHttp) -> None:
        self._http = http

    def get(self, number: int) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.request("GET", f"/firewall/{number}")["firewall"]
        return answer

    def apply(self, number: int, form: Sequence[tuple[str, str]], *, wait_s: float = 180.0,
              poll_s: float = 10.0) -> dict[str, Any]:
        state: dict[str, Any] = self._http.request("POST", f"/firewall/{number}", form)["firewall"]
        deadline = self._http.clock() + wait_s
        while state.get("status") == "in process" and self._http.clock() < deadline:
            self._http.sleep(poll_s)
            state = self.get(number)
        if state.get("status") == "in process":
            raise RobotConflict(0, "FIREWALL_IN_PROCESS", f"still being applied after {wait_s:.0f} s",
                                request=f"POST /firewall/{number}")
        return state
