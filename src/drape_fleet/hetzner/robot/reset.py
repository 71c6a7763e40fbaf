"""Resets (``GET /reset/{server-number}``, ``POST /reset/{server-number}``).

Types, per Robot's documentation: ``sw`` (CTRL+ALT+DEL), ``hw`` (hardware reset), ``power`` (press the power
button), ``power_long`` (hold it), ``man`` (a technician does it). Which ones a server offers is in ``options``.
"""

from __future__ import annotations

from typing import Literal

from drape_fleet.hetzner.robot._client import RobotHttp

ResetType = Literal["sw", "hw", "power", "power_long", "man"]


class ResetClient:
    def __init__(self, http: RobotHttp) -> None:
        self._http = http

    def options(self, number: int) -> tuple[str, ...]:
        answer = self._http.request("GET", f"/reset/{number}")["reset"]
        kinds = answer.get("type") or ()
        return tuple(str(kind) for kind in ([kinds] if isinstance(kinds, str) else kinds))

    def reset(self, number: int, kind: ResetType = "hw") -> str:
        """Ask Robot for the reset; it answers at once (the server goes down within seconds)."""
        answer = self._http.request("POST", f"/reset/{number}", [("type", kind)])["reset"]
        return str(answer.get("type") or kind)
