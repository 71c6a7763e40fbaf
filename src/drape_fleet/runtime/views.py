"""Reading the fleet: per-host views rebuilt from the engines' listings (thin executor over ``state``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from docker.errors import NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine, Fleet
from drape_fleet.runtime.state import Foreign, HostView, PreviewRecord, inspect_problems, parse_container, parse_cordon

GIB = 1024**3


def list_owned(engine: Engine, settings: RuntimeSettings, *, workspace: str | None = None) -> list[dict[str, Any]]:
    filters = L.owned_filter(settings.owner)
    if workspace is not None:
        filters["label"].append(f"{L.WORKSPACE}={workspace}")
    result: list[dict[str, Any]] = engine.call(lambda api: api.containers(all=True, filters=filters),
                                               "list containers", critical=True)
    return result


class Observer:
    """Builds ``HostView``s. Each container that claims to be ours is inspected once (its id is remembered):
    what the listing cannot show (privileges, capabilities, limits) must match what the runtime makes."""

    def __init__(self, config: FleetConfig, fleet: Fleet, settings: RuntimeSettings) -> None:
        self._config = config
        self._fleet = fleet
        self._settings = settings
        self._lock = threading.Lock()
        self._verified: set[str] = set()
        self._rejected: dict[str, str] = {}

    def trust(self, container_id: str) -> None:
        """A container this process just made from its own spec needs no inspection."""
        with self._lock:
            self._verified.add(container_id)

    def records(self, engine: Engine, *, workspace: str | None = None) -> tuple[list[PreviewRecord], list[Foreign]]:
        entries = list_owned(engine, self._settings, workspace=workspace)
        previews: list[PreviewRecord] = []
        foreign: list[Foreign] = []
        for entry in entries:
            parsed = parse_container(engine.name, entry, self._settings)
            if isinstance(parsed, PreviewRecord):
                try:
                    reason = self._verify(engine, parsed)
                except NotFound:  # removed between the listing and the inspection
                    continue
                if reason is not None:
                    foreign.append(Foreign(engine.name, "container", parsed.id, parsed.name, reason,
                                           memory=parsed.memory, cpus=parsed.cpus, live=parsed.live))
                    continue
                previews.append(parsed)
            else:
                foreign.append(parsed)
        return previews, foreign

    def _verify(self, engine: Engine, record: PreviewRecord) -> str | None:
        with self._lock:
            if record.id in self._verified:
                return None
            if record.id in self._rejected:
                return self._rejected[record.id]
        inspected = engine.call(lambda api: api.inspect_container(record.id), "inspect")
        problems = inspect_problems(inspected, record, self._settings)
        with self._lock:
            if problems:
                self._rejected[record.id] = "; ".join(problems)
                return self._rejected[record.id]
            self._verified.add(record.id)
        return None

    def host_view(self, name: str) -> HostView:
        host = self._config.host(name)
        engine = self._fleet[name]
        previews, foreign = self.records(engine)
        volumes = engine.call(lambda api: api.volumes(filters={"label": f"{L.OWNER}={self._settings.owner}"}),
                              "list volumes", critical=True)
        cordon = parse_cordon((volumes or {}).get("Volumes") or [], self._settings.owner)
        if not engine.facts:
            engine.probe()
        return HostView(name=name, reachable=True, memory_capacity=host.capacity.memory_gib * GIB,
                        cpu_capacity=float(host.capacity.cpus), roles=tuple(host.roles), cordon=cordon,
                        previews=tuple(previews), foreign=tuple(foreign),
                        disk_limit=bool(engine.facts.get("disk_limit")))

    def unreachable(self, name: str, error: str) -> HostView:
        host = self._config.host(name)
        return HostView(name=name, reachable=False, memory_capacity=host.capacity.memory_gib * GIB,
                        cpu_capacity=float(host.capacity.cpus), roles=tuple(host.roles), error=error)

    def views(self, *, hosts: Iterable[str] | None = None, timeout: float | None = None) -> dict[str, HostView]:
        """Every host's view in parallel; hosts in backoff or slower than the deadline are unreachable."""
        names = list(hosts) if hosts is not None else self._fleet.names
        wanted = [n for n in names if self._fleet[n].available()]
        results = self._fleet.each(lambda e: self.host_view(e.name), hosts=wanted,
                                   timeout=timeout or self._settings.snapshot_timeout_s)
        views: dict[str, HostView] = {}
        for name in names:
            engine = self._fleet[name]
            result = results.get(name)
            if isinstance(result, HostView):
                views[name] = result
            elif result is None:
                views[name] = self.unreachable(name, engine.health.last_error or "in backoff")
            else:
                views[name] = self.unreachable(name, str(result))
        return views

    def find(self, workspace: str, *, hosts: Iterable[str] | None = None,
             timeout: float | None = None) -> tuple[list[PreviewRecord], list[str]]:
        """Every container of ``workspace`` on the reachable hosts, and the hosts that could not be asked."""
        names = list(hosts) if hosts is not None else self._fleet.names
        wanted = [n for n in names if self._fleet[n].available()]
        results = self._fleet.each(lambda e: self.records(e, workspace=workspace)[0], hosts=wanted,
                                   timeout=timeout or self._settings.snapshot_timeout_s)
        found: list[PreviewRecord] = []
        missing = [n for n in names if n not in wanted]
        for name in wanted:
            result = results[name]
            if isinstance(result, list):
                found.extend(result)
            else:
                missing.append(name)
        return found, missing
