"""What the fake Robot webservice knows: the account (credentials, servers, stored keys), per-server boot, reset
and firewall state, the request limits, the failed-login block, and every request it answered.

Pure data and rules, no HTTP (that is ``robot.py``). Times come from an injectable clock so tests can step
through rate-limit windows and the 10-minute block without waiting.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Request limits per route family: (max_request, interval in s). Robot states its limits in each
# RATE_LIMIT_EXCEEDED answer; these defaults are of that shape and tests set small ones.
DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    "server": (200, 3600), "boot": (500, 3600), "reset": (200, 3600), "reset_post": (50, 3600),
    "key": (200, 3600), "firewall": (500, 3600), "firewall_post": (500, 3600),
}
RESCUE_SYSTEMS = ("linux", "vkvm")
RESET_TYPES = ("sw", "hw", "man", "power", "power_long")


@dataclass
class FakeKey:
    name: str
    fingerprint: str
    type: str = "ED25519"
    size: int = 256
    data: str = ""
    created_at: str = "2024-01-01 12:00:00"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint, "type": self.type, "size": self.size,
                "data": self.data, "created_at": self.created_at}


@dataclass
class FakeServer:
    number: int
    name: str
    ip: str
    product: str = "AX102"
    dc: str = "FSN1-DC14"
    status: str = "ready"
    cancelled: bool = False
    ipv6_net: str = "2a01:4f8:10a:1::"
    reset_types: tuple[str, ...] = RESET_TYPES
    rescue_host_keys: list[dict[str, Any]] = field(default_factory=list)
    """What the rescue system's sshd will present, as Robot describes it: {fingerprint, type, size}."""
    rescue: dict[str, Any] | None = None
    """The active rescue activation, or None."""
    last_rescue: dict[str, Any] | None = None
    manual_reset_pending: bool = False
    firewall: dict[str, Any] = field(default_factory=dict)
    firewall_polls_left: int = 0

    def summary(self) -> dict[str, Any]:
        return {"server_ip": self.ip, "server_ipv6_net": self.ipv6_net, "server_number": self.number,
                "server_name": self.name, "product": self.product, "dc": self.dc, "traffic": "unlimited",
                "status": self.status, "cancelled": self.cancelled, "paid_until": "2030-01-01"}

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "ip": [self.ip], "subnet": [{"ip": self.ipv6_net, "mask": "64"}],
                "reset": True, "rescue": True, "vnc": True, "windows": False, "plesk": False, "cpanel": False,
                "wol": True, "hot_swap": False, "linked_storagebox": None}

    def rescue_json(self) -> dict[str, Any]:
        base = {"server_ip": self.ip, "server_ipv6_net": self.ipv6_net, "server_number": self.number}
        if self.rescue is None:
            return {**base, "os": list(RESCUE_SYSTEMS), "active": False, "password": None, "authorized_key": [],
                    "host_key": [], "boot_time": None}
        return {**base, **self.rescue}


@dataclass
class Recorded:
    method: str
    path: str
    form: list[tuple[str, str]]
    status: int
    user: str


class RobotFakeState:
    def __init__(self, *, user: str = "robot-user", password: str = "robot-secret",  # noqa: S107 (a fake's)
                 servers: list[FakeServer] | None = None, keys: list[FakeKey] | None = None,
                 limits: dict[str, tuple[int, int]] | None = None, failed_logins_before_block: int = 3,
                 block_s: float = 600.0, firewall_polls: int = 1, clock: Callable[[], float] = time.monotonic,
                 on_reset: Callable[[FakeServer, str, bool], None] | None = None) -> None:
        self.user, self.password = user, password
        self.servers = {server.number: server for server in servers or ()}
        self.keys = list(keys or ())
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.failed_logins_before_block, self.block_s = failed_logins_before_block, block_s
        self.firewall_polls = firewall_polls
        self.clock = clock
        self.on_reset = on_reset
        self.maintenance = False
        self.request_log: Path | None = None
        """When set, every answered request is appended as a JSON line (the fake as a process tells its test)."""
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.resets: list[tuple[int, str]] = []
        self._failures: dict[str, int] = {}
        self._blocked_until: dict[str, float] = {}
        self._calls: dict[tuple[str, str], list[float]] = {}

    # -- the caller ------------------------------------------------------------------------------------

    def login(self, client_ip: str, user: str | None, password: str | None) -> bool:
        """Whether to let the request in. Three failed logins in a row block the caller's IP for block_s,
        whatever it sends meanwhile (the documentation says blocked; the answer stays 401 here)."""
        now = self.clock()
        if self._blocked_until.get(client_ip, 0.0) > now:
            return False
        if user == self.user and password == self.password:
            self._failures.pop(client_ip, None)
            return True
        failures = self._failures.get(client_ip, 0) + 1
        self._failures[client_ip] = failures
        if failures >= self.failed_logins_before_block:
            self._blocked_until[client_ip] = now + self.block_s
            self._failures.pop(client_ip, None)
        return False

    def record(self, request: Recorded) -> None:
        self.requests.append(request)
        if self.request_log is not None:
            with self.request_log.open("a") as log:
                log.write(json.dumps(asdict(request)) + "\n")

    def blocked(self, client_ip: str) -> bool:
        return self._blocked_until.get(client_ip, 0.0) > self.clock()

    def failed_logins(self, client_ip: str) -> int:
        return self._failures.get(client_ip, 0)

    def over_limit(self, user: str, family: str) -> tuple[int, int] | None:
        """(max_request, interval) when this request is one too many in the sliding window, else None."""
        max_request, interval = self.limits[family]
        now = self.clock()
        calls = [t for t in self._calls.get((user, family), []) if t > now - interval]
        if len(calls) >= max_request:
            self._calls[(user, family)] = calls
            return max_request, interval
        self._calls[(user, family)] = [*calls, now]
        return None

    # -- boot and reset --------------------------------------------------------------------------------

    def activate_rescue(self, server: FakeServer, os_name: str, fingerprints: list[str]) -> dict[str, Any]:
        keys = [{"key": key.as_json()} for key in self.keys if key.fingerprint in fingerprints]
        server.rescue = {"os": os_name, "active": True, "password": secrets.token_urlsafe(12),
                         "authorized_key": keys,
                         "host_key": [{"key": dict(host_key)} for host_key in server.rescue_host_keys],
                         "boot_time": None}
        server.last_rescue = server.rescue_json()
        return server.rescue_json()

    def reset(self, server: FakeServer, kind: str) -> None:
        """A reset boots whatever is configured: an active rescue activation is used up by it."""
        if kind == "man":
            server.manual_reset_pending = True
        boots_rescue = server.rescue is not None
        if boots_rescue:
            server.last_rescue = {**server.rescue_json(), "active": False}
            server.rescue = None
        self.resets.append((server.number, kind))
        if self.on_reset is not None:
            self.on_reset(server, kind, boots_rescue)
