"""The rescue system (``/boot/{server-number}/rescue``): activate it for the next boot with the SSH keys Robot
stores (named by fingerprint), read it, deactivate it.

The activation answers the rescue system's root password and its SSH host keys. The keys are what lets the
caller pin the rescue system's identity before the first connection instead of trusting whatever answers. The
password is kept out of ``repr`` and never stored or logged: key authentication is all this project uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drape_fleet.hetzner.robot._client import RobotHttp


@dataclass(frozen=True)
class HostKey:
    """A host key as Robot describes it: fingerprint (MD5 ``aa:bb:...`` or ``SHA256:...``), type and size."""

    fingerprint: str
    type: str = ""
    size: int = 0

    @classmethod
    def from_json(cls, item: Any) -> HostKey:
        # Documented as [{"key": {"fingerprint", "type", "size"}}]; some clients model plain strings: take both.
        if isinstance(item, str):
            return cls(item)
        key = item.get("key", item)
        return cls(str(key["fingerprint"]), str(key.get("type") or ""), int(key.get("size") or 0))


@dataclass(frozen=True)
class RescueState:
    server_number: int
    server_ip: str | None
    active: bool
    os: str
    """The active rescue system, or (inactive) the ones Robot offers, comma-separated."""
    authorized_keys: tuple[str, ...]
    host_keys: tuple[HostKey, ...]
    boot_time: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RescueState:
        os_value = data.get("os")
        return cls(server_number=int(data["server_number"]), server_ip=data.get("server_ip"),
                   active=bool(data.get("active")),
                   os=",".join(os_value) if isinstance(os_value, list) else str(os_value or ""),
                   authorized_keys=tuple(str(item.get("key", item)["fingerprint"]) if isinstance(item, dict)
                                         else str(item) for item in data.get("authorized_key") or ()),
                   host_keys=tuple(HostKey.from_json(item) for item in data.get("host_key") or ()),
                   boot_time=data.get("boot_time"), password=data.get("password"))


class BootClient:
    def __init__(self, http: RobotHttp) -> None:
        self._http = http

    def rescue(self, number: int) -> RescueState:
        return RescueState.from_json(self._http.request("GET", f"/boot/{number}/rescue")["rescue"])

    def last_rescue(self, number: int) -> RescueState:
        """The last activation (with its host keys), also after the server booted into it."""
        return RescueState.from_json(self._http.request("GET", f"/boot/{number}/rescue/last")["rescue"])

    def activate_rescue(self, number: int, fingerprints: tuple[str, ...], *, os: str = "linux") -> RescueState:
        """Active for the next boot only; a reset then boots the rescue system."""
        form = [("os", os)] + [("authorized_key[]", fingerprint) for fingerprint in fingerprints]
        return RescueState.from_json(self._http.request("POST", f"/boot/{number}/rescue", form)["rescue"])

    def deactivate_rescue(self, number: int) -> RescueState:
        return RescueState.from_json(self._http.request("DELETE", f"/boot/{number}/rescue")["rescue"])
