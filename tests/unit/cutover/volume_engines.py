"""Engines that hold only volumes, in memory, at the runtime's ``Engine.call`` seam: what the state store and the
metrics store use of Docker (list with label filters, create - which, like Docker, returns an existing volume of
that name unchanged - inspect, remove), and a switch that takes a host off the network."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from docker.errors import NotFound

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clients import Endpoint
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.fleet import Fleet

OWNER = "drape-fleet"
"""The runtime's default owner label value (what the stores filter on)."""
SETTINGS = RuntimeSettings(backoff_initial_s=0.001, backoff_max_s=0.002)


class LeapingClock(Clock):
    """Monotonic time that leaps a minute at every look: a host's backoff is always over by its next call, so a
    host that comes back answers at once (the backoff itself is the runtime's, tested there)."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            self._now += 60.0
            return self._now


class VolumesApi:
    def __init__(self) -> None:
        self.table: dict[str, dict[str, Any]] = {}
        self.down = False
        self.lock = threading.Lock()
        self.creates = 0
        self.before_create: Callable[[str], None] | None = None
        """Runs just before a create: another writer getting there first."""

    def _reachable(self) -> None:
        if self.down:
            raise requests.exceptions.ConnectionError("connection refused (host down)")

    def volumes(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        self._reachable()
        wanted = (filters or {}).get("label") or []
        wanted = [wanted] if isinstance(wanted, str) else wanted
        pairs = [tuple(item.split("=", 1)) for item in wanted]
        with self.lock:
            found = [dict(v) for v in self.table.values()
                     if all((v["Labels"] or {}).get(k) == value for k, value in pairs)]
        return {"Volumes": found, "Warnings": None}

    def create_volume(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        self._reachable()
        if self.before_create is not None:
            hook, self.before_create = self.before_create, None
            hook(name)
        with self.lock:
            self.creates += 1
            return dict(self.table.setdefault(name, {"Name": name, "Driver": "local", "Labels": dict(labels or {})}))

    def inspect_volume(self, name: str) -> dict[str, Any]:
        self._reachable()
        with self.lock:
            if name not in self.table:
                raise NotFound(f"get {name}: no such volume")
            return dict(self.table[name])

    def remove_volume(self, name: str) -> None:
        self._reachable()
        with self.lock:
            if self.table.pop(name, None) is None:
                raise NotFound(f"get {name}: no such volume")

    def close(self) -> None:
        pass


class VolumeFleet:
    """``hosts`` engines with their APIs, as a runtime ``Fleet``."""

    def __init__(self, hosts: tuple[str, ...] = ("ax1", "ax2", "ax3")) -> None:
        self.apis = {host: VolumesApi() for host in hosts}
        self.fleet = Fleet(Engine(Endpoint(host, f"unix:///nonexistent/{host}.sock"), SETTINGS, clock=LeapingClock(),
                                  connect=lambda endpoint, timeout, pool: self.apis[endpoint.host])
                           for host in hosts)

    def names(self, host: str) -> list[str]:
        return sorted(self.apis[host].table)

    def close(self) -> None:
        self.fleet.close()
