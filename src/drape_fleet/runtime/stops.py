"""Stop means stopped: a ``stop`` that could not reach every host is remembered until those hosts are clean.

A ``stop`` while a host is down, black-holed or just slow removes the workspace's previews where it can and
leaves a *stop intent* for the rest: containers of that workspace created before the stop are removed wherever they
appear later (a start after the stop makes a newer one, which is untouched). What was chosen, and why:

* **On the hosts that answered**: a marker volume ``drape-stop-<workspace>-<nonce>`` (labels: owner, kind ``stop``,
  the workspace, the stop's time). Volumes survive engine restarts and reboots, every backend process sees them in
  the listings it already makes (its watches and the reaper's listings), and a process that restarts loses
  nothing: durable as long as one host answered the stop.
* **In this process's memory** as well (bounded), so the intent is applied the moment the host's health check
  succeeds, without waiting for a reaper pass; and kept even when no host answered at all (then only this
  process knows, which the caller is told: ``stop`` reports the hosts it could not reach).
* **Until it cannot matter**: a marker is removed when every host has answered a reaper's listing without an
  older container of its workspace, and at the latest two persistence windows after the stop. By then an old
  copy on a host that comes back is idle (the stop ended its activity), so the reaper removes it anyway.
* Nobody takes over a covered container in between (``covers``): a start after the stop never gets the stopped
  copy back, which the marker would then remove under the user.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from docker.errors import APIError, NotFound

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime import lifecycle
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import CallFailed, HostDown, RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.lifecycle import Reaped
from drape_fleet.runtime.state import PreviewRecord, StopMarker
from drape_fleet.runtime.status import StopResult
from drape_fleet.runtime.views import Observer

INTENTS_KEPT = 10_000
"""Stop intents this process remembers at most (oldest forgotten first; the markers on the hosts remain)."""


class StopIntents:
    """Stops not yet applied everywhere: this process's memory, and the markers on the hosts (via the watches)."""

    def __init__(self, settings: RuntimeSettings, observer: Observer) -> None:
        self._settings = settings
        self._observer = observer
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, datetime] = OrderedDict()

    def remember(self, workspace: str, since: datetime) -> None:
        with self._lock:
            self._pending[workspace] = max(since, self._pending.get(workspace, since))
            self._pending.move_to_end(workspace)
            while len(self._pending) > INTENTS_KEPT:
                self._pending.popitem(last=False)

    def forget(self, workspace: str) -> None:
        with self._lock:
            self._pending.pop(workspace, None)

    def pending(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._pending)

    def all_markers(self, extra: Iterable[StopMarker] = ()) -> dict[str, datetime]:
        """The newest stop time per workspace: this process's intents, the markers the watches see, ``extra``."""
        since = self.pending()
        markers = [m for view in self._observer.views(wait=0).values() for m in view.stops]
        for marker in [*markers, *extra]:
            current = since.get(marker.workspace)
            if current is None or marker.since > current:
                since[marker.workspace] = marker.since
        return since

    def covers(self, record: PreviewRecord, stops: dict[str, datetime] | None = None) -> bool:
        """Was ``record`` made before a stop of its workspace (so it is to be removed, never served)?"""
        since = (stops if stops is not None else self.all_markers()).get(record.workspace)
        return since is not None and record.created <= since


def write_markers(engines: Iterable[Engine], settings: RuntimeSettings, workspace: str, since: datetime) -> list[str]:
    """A marker volume for the stop of ``workspace`` on each of ``engines``; returns the hosts that took it."""
    name = L.stop_marker_name(workspace, secrets.token_hex(6))
    labels = {L.OWNER: settings.owner, L.KIND: L.KIND_STOP, L.WORKSPACE: workspace, L.CREATED: L.format_time(since)}
    written = []
    for engine in engines:
        with contextlib.suppress(RuntimeFailure, APIError):
            engine.call(lambda api: api.create_volume(name=name, labels=labels), "write stop marker")
            written.append(engine.name)
    return written


def remove_marker(engine: Engine, name: str) -> None:
    with contextlib.suppress(NotFound):
        engine.call(lambda api: api.remove_volume(name), "remove stop marker")


def stop_everywhere(workspace: str, fleet: Fleet, observer: Observer, intents: StopIntents,
                    settings: RuntimeSettings, *, now: datetime) -> StopResult:
    """Stop ``workspace`` on every host that answers; remember the stop for the others (see the module's docstring).

    Each copy is renamed first (``drape-stop-...``: from then on, whoever sees it finishes the removal), then stopped
    and removed. A removal that takes longer than an ordinary call (a big ``node_modules``) goes on in the
    background within its own budget: the host is fine, and the stop is done as far as the caller is concerned."""
    found, unknown = observer.find(workspace)
    unreached = set(unknown) | {n for n in fleet.names if not fleet[n].available()}
    removed = False
    for record in found:
        outcome: list[Reaped | BaseException] = []

        def remove(record: PreviewRecord = record, outcome: list[Reaped | BaseException] = outcome) -> None:
            try:
                outcome.append(lifecycle.reap_one(fleet[record.host], record, now=now, persist_s=settings.persist_s,
                                                  force=True, stop=True))
            except (RuntimeFailure, APIError) as exc:
                outcome.append(exc)

        removal = threading.Thread(target=remove, name=f"drape-stop-{workspace}", daemon=True)
        removal.start()
        removal.join(timeout=settings.request_timeout_s)
        if not outcome:  # still removing: slow, not failed
            removed = removed or record.live
        elif isinstance(outcome[0], (CallFailed, HostDown)):
            unreached.add(record.host)
            removed = removed or record.live
        elif isinstance(outcome[0], BaseException):
            unreached.add(record.host)
        else:
            removed = removed or (record.live and outcome[0] is not Reaped.GONE)
    if unreached:
        intents.remember(workspace, now)
        write_markers([fleet[n] for n in fleet.names if n not in unreached], settings, workspace, now)
    return StopResult(workspace, removed, tuple(sorted(unreached)))
