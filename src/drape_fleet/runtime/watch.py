"""One host's containers, preview networks and marker volumes, kept current from its engine's event stream.

Why: placement ranks every host for every decision. Listing 100 hosts of 2,000 containers each per decision
would take seconds; instead each host's engine streams its events (``GET /events``) and a watch applies each one
by reading back that one object, so a decision reads memory. What a watch holds is for *ranking* only (how full a
host is, whether it is cordoned, its spare networks): every decision that must be exact reads the engine itself
(the claim protocol's listing, the look-up of a workspace before a placement, the reaper's listings).

* Start: open the event stream first, then list everything: whatever happens in between is already queued on the
  stream, and applying an event is idempotent (it reads the object again).
* docker-py's event stream has no timeout: from a black-holed host it just goes quiet. A watch does not guess
  from silence; the host's health checks decide, and a host that goes down has its stream closed (``interrupt``)
  and is listed again when a health check brings it back (``wake``).
* A watch that has not listed its host since it last lost its stream has no view (``view()`` is None): callers
  treat that host as unknown, never as empty.
* The listings this process makes anyway (the claim protocol's, the reaper's) are absorbed, so a decision right
  after a placement sees it. Each read takes a sequence number when it starts; an object keeps the newest read
  of it, so an older listing never overwrites a newer event (and a removal is remembered a while, so an older
  listing does not bring a removed container back).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drape_fleet.config.models import Host
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.state import (
    Foreign,
    Holder,
    HostView,
    PreviewRecord,
    parse_container,
    parse_cordon,
    parse_stop_markers,
)

GIB = 1024**3
EVENTS = {"type": ["container", "volume"]}
"""Labels are not filtered by the engine (volume events carry none): ours are picked out here."""
CONTAINER_ACTIONS = frozenset({"create", "start", "restart", "die", "pause", "unpause", "rename", "destroy", "update"})
"""Container events that change what a watch holds (not ``exec_*``, ``archive-path``, ``extract-to-dir``...)."""
GONE_KEPT = 4096
"""Removed container ids remembered (against an older listing bringing one back), newest kept."""

_READS = itertools.count(1)
"""Every read of an engine's state takes the next number when it starts: newer reads win."""


def next_read() -> int:
    return next(_READS)


@dataclass
class _Item:
    parsed: PreviewRecord | Holder | Foreign
    read: int


class HostWatch:
    """What one host holds, from its event stream. Thread-safe; ``run`` is the watch's own thread."""

    def __init__(self, engine: Engine, host: Host, settings: RuntimeSettings, *, closed: threading.Event,
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self._host = host
        self._settings = settings
        self._closed = closed
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.synced = threading.Event()
        self._items: dict[str, _Item] = {}
        self._gone: dict[str, int] = {}
        self._volumes: dict[str, dict[str, Any]] = {}
        self._taken: set[str] = set()
        """Claims of spare holders this process is placing a preview on (not spares any more, until listed)."""
        self._stream: Any = None
        self._view: HostView | None = None
        self.error: str | None = "not listed yet"
        self.events = 0
        """Events applied (for tests and the bench)."""

    # -- the watch's thread -----------------------------------------------------------------------

    def run(self) -> None:
        while not self._closed.is_set():
            if not self.engine.available():
                self._lost(f"host down: {self.engine.health.last_error}")
                self._pause(1.0)
                continue
            stream = None
            try:
                stream = self.engine.call(lambda api: api.event_stream(
                    EVENTS, connect_timeout=self._settings.probe_timeout_s), "watch events")
                with self._lock:
                    self._stream = stream
                if self._closed.is_set():
                    break
                self.resync()
                for event in stream:
                    if self._closed.is_set():
                        break
                    self.apply(event)
                error = "event stream ended"
            except Exception as exc:  # whatever happened, the view is unknown until the next listing
                error = f"event stream: {' '.join(str(exc).split())[:160]}"
            finally:
                with self._lock:
                    self._stream = None
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
            self._lost(error)
            self._pause(self._rng.uniform(0.2, 1.0))

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _lost(self, error: str) -> None:
        with self._lock:
            self.synced.clear()
            self._view = None
            self.error = error

    def wake(self) -> None:
        """The host is back (a health check succeeded): look again now."""
        self._wake.set()

    def interrupt(self) -> None:
        """The host is down: close its stream (which may be silent forever) and forget the view."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        self._lost(f"host down: {self.engine.health.last_error}")

    # -- reading the engine -----------------------------------------------------------------------

    def resync(self) -> None:
        """List everything of ours on the host and start over from that."""
        read = next_read()
        if not self.engine.facts:
            self.engine.check()
        owned = L.owned_filter(self._settings.owner)
        entries = self.engine.call(lambda api: api.containers(all=True, filters=owned), "watch: list containers")
        volumes = self.engine.call(lambda api: api.volumes(filters=owned), "watch: list volumes")
        with self._lock:
            self._items = {}
            self._absorb(entries, read, complete=True)
            self._volumes = {str(v.get("Name")): v for v in (volumes or {}).get("Volumes") or []}
            self._view = None
            self.error = None
            self.synced.set()

    def apply(self, event: Mapping[str, Any]) -> None:
        """One event from the stream: read the object it is about again."""
        kind, action = event.get("Type"), str(event.get("Action", ""))
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        if kind == "container" and action in CONTAINER_ACTIONS and attributes.get(L.OWNER) == self._settings.owner:
            self.refresh(str(actor.get("ID", "")))
        elif kind == "volume" and action in ("create", "destroy") and str(actor.get("ID", "")).startswith("drape-"):
            self.refresh_volumes()
        else:
            return
        self.events += 1

    def refresh(self, container_id: str) -> None:
        read = next_read()
        entries = self.engine.call(lambda api: api.containers(all=True, filters={"id": [container_id]}),
                                   "watch: read container")
        entry = next((e for e in entries or [] if e.get("Id") == container_id), None)
        with self._lock:
            item = self._items.get(container_id)
            if item is not None and item.read > read:
                return
            if entry is None or (entry.get("Labels") or {}).get(L.OWNER) != self._settings.owner:
                self._forget(container_id, read)
            else:
                self._items[container_id] = _Item(parse_container(self.engine.name, entry, self._settings), read)
            self._view = None

    def refresh_volumes(self) -> None:
        volumes = self.engine.call(lambda api: api.volumes(filters=L.owned_filter(self._settings.owner)),
                                   "watch: list volumes")
        with self._lock:
            self._volumes = {str(v.get("Name")): v for v in (volumes or {}).get("Volumes") or []}
            self._view = None

    def absorb(self, entries: Iterable[Mapping[str, Any]], read: int) -> None:
        """A complete listing of the host's containers of ours, made by this process (``read`` taken before it
        was requested): newer than what the watch holds, it replaces it."""
        with self._lock:
            if self.synced.is_set():
                self._absorb(entries, read, complete=True)
                self._view = None

    def _absorb(self, entries: Iterable[Mapping[str, Any]], read: int, *, complete: bool) -> None:
        listed: set[str] = set()
        for entry in entries:
            container_id = str(entry.get("Id", ""))
            listed.add(container_id)
            item = self._items.get(container_id)
            if (item is not None and item.read > read) or self._gone.get(container_id, 0) > read:
                continue
            self._items[container_id] = _Item(parse_container(self.engine.name, entry, self._settings), read)
        if complete:
            for container_id in [c for c, item in self._items.items() if c not in listed and item.read < read]:
                self._forget(container_id, read)

    def _forget(self, container_id: str, read: int) -> None:
        self._items.pop(container_id, None)
        self._gone[container_id] = read
        if len(self._gone) > GONE_KEPT:
            for old in sorted(self._gone, key=self._gone.__getitem__)[: GONE_KEPT // 2]:
                del self._gone[old]

    # -- what callers read ------------------------------------------------------------------------

    def view(self) -> HostView | None:
        """The host as its events say, or None when it is not known now (not listed since its stream broke)."""
        with self._lock:
            if not self.synced.is_set():
                return None
            if self._view is None:
                self._view = self._build()
            return self._view

    def _build(self) -> HostView:
        previews = tuple(i.parsed for i in self._items.values() if isinstance(i.parsed, PreviewRecord))
        holders = tuple(i.parsed for i in self._items.values() if isinstance(i.parsed, Holder))
        foreign = tuple(i.parsed for i in self._items.values() if isinstance(i.parsed, Foreign))
        self._taken &= {h.claim for h in holders} - {p.claim for p in previews}
        volumes = list(self._volumes.values())
        host = self._host
        return HostView(name=host.name, reachable=True, memory_capacity=host.capacity.memory_gib * GIB,
                        cpu_capacity=float(host.capacity.cpus), roles=tuple(host.roles),
                        cordon=parse_cordon(volumes, self._settings.owner),
                        stops=parse_stop_markers(volumes, self._settings.owner), previews=previews, foreign=foreign,
                        holders=holders, disk_limit=bool(self.engine.facts.get("disk_limit")),
                        disk_required=self._settings.disk_limit == "required")

    def spares(self, port: int) -> list[Holder]:
        """Network holders publishing ``port`` that no preview has joined (oldest first): ready to be taken."""
        view = self.view()
        if view is None:
            return []
        with self._lock:
            return [h for h in view.spares(port) if h.claim not in self._taken]

    def take_spare(self, port: int, rng: random.Random) -> Holder | None:
        """One of the oldest spares publishing ``port``, marked taken in the same step (two threads of this process
        never pick the same one; another process may, and the claim protocol settles that)."""
        view = self.view()
        if view is None:
            return None
        with self._lock:
            spares = [h for h in view.spares(port) if h.claim not in self._taken][:4]
            if not spares:
                return None
            spare = rng.choice(spares)  # not always the oldest: another process may be taking that one
            self._taken.add(spare.claim)
            return spare

    def taken(self) -> set[str]:
        with self._lock:
            return set(self._taken)

    def take(self, claim: str) -> None:
        """This process is placing a preview in the holder ``claim``: it is no spare any more."""
        with self._lock:
            self._taken.add(claim)
