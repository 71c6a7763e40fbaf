"""SSH keys stored in Robot (``GET /key``): the rescue system only accepts these, named by fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drape_fleet.hetzner.robot._client import RobotHttp
from drape_fleet.hetzner.robot.errors import RobotNotFound


@dataclass(frozen=True)
class StoredKey:
    name: str
    fingerprint: str
    """MD5, as Robot writes it: ``56:29:99:a4:...``."""
    type: str
    size: int
    data: str = ""
    created_at: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredKey:
        return cls(name=str(data.get("name") or ""), fingerprint=str(data["fingerprint"]),
                   type=str(data.get("type") or ""), size=int(data.get("size") or 0),
                   data=str(data.get("data") or ""), created_at=str(data.get("created_at") or ""))


class KeysClient:
    def __init__(self, http: RobotHttp) -> None:
        self._http = http

    def list(self) -> list[StoredKey]:
        """Every stored key (none stored answers 404 NOT_FOUND: empty)."""
        try:
            answer = self._http.request("GET", "/key")
        except RobotNotFound:
            return []
        return [StoredKey.from_json(item["key"]) for item in answer or ()]
