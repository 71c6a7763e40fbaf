"""Reading the fleet: each host's view, from its watch (ranking) or from a listing made now (everything exact).

Two ways to know what a host holds, for two kinds of question:

* ``views()`` reads the watches (``watch``: kept current from the engines' event streams): how full each host is,
  whether it is cordoned, its spare networks. Placement ranks hosts with it, in memory, for every decision.
* ``find``, ``fresh_views`` and ``host_view`` list the engines now: whether a workspace has a preview (before
  placing one, stopping one, or taking one over), what the reaper may remove, the claim protocol's count. Each
  container that claims to be ours is checked once by id (``Verifier``): what a listing cannot show (privileges,
  capabilities, limits) must match what the runtime makes.

A host that does not answer is *unknown*, never empty: ``find`` returns it apart, so that no caller takes "not
found there" for "not there". A host whose health checks failed (down) is dead for these questions: its
previews are placed again elsewhere, and when it comes back the reaper settles the duplicates.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from docker.errors import NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine, HostState
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.state import (
    Foreign,
    Holder,
    HostView,
    PreviewRecord,
    inspect_problems,
    parse_container,
    parse_cordon,
    parse_stop_markers,
)
from drape_fleet.runtime.watch import HostWatch, next_read

GIB = 1024**3
VERIFIED_KEPT = 100_000
"""Container ids whose inspection is remembered (a bounded table: ids of removed containers age out)."""


def list_owned(engine: Engine, settings: RuntimeSettings, *, workspace: str | None = None) -> list[dict[str, Any]]:
    filters = L.owned_filter(settings.owner)
    if workspace is not None:
        filters["label"].append(f"{L.WORKSPACE}={workspace}")
    result: list[dict[str, Any]] = engine.call(lambda api: api.containers(all=True, filters=filters),
                                               "list containers")
    return result


class Verifier:
    """Each container that claims to be ours is inspected once (by id): the answer is remembered, boundedly."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._known: OrderedDict[str, str | None] = OrderedDict()

    def trust(self, container_id: str) -> None:
        """A container this process just made from its own spec needs no inspection."""
        self._remember(container_id, None)

    def _remember(self, container_id: str, problem: str | None) -> None:
        with self._lock:
            self._known[container_id] = problem
            self._known.move_to_end(container_id)
            while len(self._known) > VERIFIED_KEPT:
                self._known.popitem(last=False)

    def problem(self, engine: Engine, record: PreviewRecord) -> str | None:
        """Why ``record`` is not one of ours (None: it is). Raises ``NotFound`` when it is gone."""
        with self._lock:
            if record.id in self._known:
                return self._known[record.id]
        inspected = engine.call(lambda api: api.inspect_container(record.id), "inspect")
        problems = inspect_problems(inspected, record, self._settings)
        self._remember(record.id, "; ".join(problems) or None)
        return "; ".join(problems) or None


class Observer:
    """Every host's watch, and the listings made now. Starts the watches' threads (``start``)."""

    def __init__(self, config: FleetConfig, fleet: Fleet, settings: RuntimeSettings, *,
                 closed: threading.Event | None = None, rng: random.Random | None = None) -> None:
        self._config = config
        self._fleet = fleet
        self._settings = settings
        self._closed = closed or threading.Event()
        self.verifier = Verifier(settings)
        self._watches = {name: HostWatch(fleet[name], config.host(name), settings, closed=self._closed, rng=rng)
                         for name in fleet.names}
        self._threads: list[threading.Thread] = []
        fleet.on_change(self._host_changed)

    def start(self) -> None:
        for name, watch in self._watches.items():
            thread = threading.Thread(target=watch.run, name=f"drape-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        for watch in self._watches.values():
            watch.interrupt()
            watch.wake()
        for thread in self._threads:
            thread.join(timeout=2)

    def _host_changed(self, engine: Engine, old: HostState, new: HostState) -> None:
        watch = self._watches.get(engine.name)
        if watch is None:
            return
        if new is HostState.DOWN:
            watch.interrupt()
        elif new is HostState.UP:
            watch.wake()

    def watch(self, host: str) -> HostWatch:
        return self._watches[host]

    def trust(self, container_id: str) -> None:
        self.verifier.trust(container_id)

    # -- from the watches (ranking) ---------------------------------------------------------------

    def views(self, *, hosts: Iterable[str] | None = None, wait: float | None = None) -> dict[str, HostView]:
        """Every host as its watch knows it, in memory. A watch not listed yet is waited for (up to ``wait``,
        default ``snapshot_timeout_s``) unless its host is down; a host still unknown then is unreachable here."""
        names = list(hosts) if hosts is not None else self._fleet.names
        budget = self._settings.snapshot_timeout_s if wait is None else wait
        views: dict[str, HostView] = {}
        for name in names:
            watch = self._watches[name]
            view = watch.view()
            if view is None and budget > 0 and self._fleet[name].available():
                watch.synced.wait(budget)  # the first use after a start or a return: its listing is under way
                view = watch.view()
            views[name] = view or self.unreachable(name, watch.error or "not known yet")
        return views

    def unreachable(self, name: str, error: str) -> HostView:
        host = self._config.host(name)
        engine = self._fleet[name]
        if engine.state is HostState.DOWN:
            error = f"down: {engine.health.last_error or error}"
        return HostView(name=name, reachable=False, memory_capacity=host.capacity.memory_gib * GIB,
                        cpu_capacity=float(host.capacity.cpus), roles=tuple(host.roles), error=error,
                        disk_required=self._settings.disk_limit == "required")

    # -- listings made now (exact) ----------------------------------------------------------------

    def records(self, engine: Engine, *, workspace: str | None = None,
                entries: list[dict[str, Any]] | None = None) -> tuple[list[PreviewRecord], list[Foreign]]:
        previews, _, foreign = self._parsed(engine, workspace=workspace, entries=entries)
        return previews, foreign

    def _parsed(self, engine: Engine, *, workspace: str | None = None, entries: list[dict[str, Any]] | None = None
                ) -> tuple[list[PreviewRecord], list[Holder], list[Foreign]]:
        entries = list_owned(engine, self._settings, workspace=workspace) if entries is None else entries
        previews: list[PreviewRecord] = []
        holders: list[Holder] = []
        foreign: list[Foreign] = []
        for entry in entries:
            parsed = parse_container(engine.name, entry, self._settings)
            if isinstance(parsed, Holder):
                holders.append(parsed)
            elif isinstance(parsed, PreviewRecord):
                try:
                    reason = self.verifier.problem(engine, parsed)
                except NotFound:  # removed between the listing and the inspection
                    continue
                if reason is not None:
                    foreign.append(Foreign(engine.name, "container", parsed.id, parsed.name, reason,
                                           memory=parsed.memory, cpus=parsed.cpus, live=parsed.live))
                    continue
                previews.append(parsed)
            else:
                foreign.append(parsed)
        return previews, holders, foreign

    def engine(self, name: str) -> Engine:
        return self._fleet[name]

    def host_view(self, name: str) -> HostView:
        """The host listed now (containers and volumes), absorbed into its watch too."""
        host = self._config.host(name)
        engine = self._fleet[name]
        read = next_read()
        entries = list_owned(engine, self._settings)
        previews, holders, foreign = self._parsed(engine, entries=entries)
        volumes = engine.call(lambda api: api.volumes(filters={"label": f"{L.OWNER}={self._settings.owner}"}),
                              "list volumes")
        self._watches[name].absorb(entries, read)
        if not engine.facts:
            engine.check()
        listed = (volumes or {}).get("Volumes") or []
        return HostView(name=name, reachable=True, memory_capacity=host.capacity.memory_gib * GIB,
                        cpu_capacity=float(host.capacity.cpus), roles=tuple(host.roles),
                        cordon=parse_cordon(listed, self._settings.owner),
                        stops=parse_stop_markers(listed, self._settings.owner), previews=tuple(previews),
                        holders=tuple(holders), foreign=tuple(foreign), disk_limit=bool(engine.facts.get("disk_limit")),
                        disk_required=self._settings.disk_limit == "required")

    def fresh_views(self, *, hosts: Iterable[str] | None = None, timeout: float | None = None) -> dict[str, HostView]:
        """Every host listed now, in parallel; hosts that are down or slower than the deadline are unreachable."""
        names = list(hosts) if hosts is not None else self._fleet.names
        results = self._fleet.each(lambda e: self.host_view(e.name), hosts=names,
                                   timeout=timeout or self._settings.snapshot_timeout_s)
        views: dict[str, HostView] = {}
        for name in names:
            result = results[name]
            views[name] = result if isinstance(result, HostView) else self.unreachable(name, str(result))
        return views

    def find(self, workspace: str, *, hosts: Iterable[str] | None = None,
             timeout: float | None = None) -> tuple[list[PreviewRecord], list[str]]:
        """Every container of ``workspace`` on the hosts that answer now, and the hosts that are *unknown*: alive as
        far as their health checks say, but not answering this look-up in time. Hosts that are down are neither:
        their previews count as lost (failover)."""
        names = list(hosts) if hosts is not None else self._fleet.names
        results = self._fleet.each(lambda e: self.records(e, workspace=workspace)[0], hosts=names,
                                   timeout=timeout or self._settings.snapshot_timeout_s)
        found: list[PreviewRecord] = []
        unknown: list[str] = []
        for name in names:
            result = results[name]
            if isinstance(result, list):
                found.extend(result)
            elif self._fleet[name].available():
                unknown.append(name)
        return found, unknown
