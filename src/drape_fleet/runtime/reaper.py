"""The reaper: one pass over the fleet, safe to run from every backend process at once.

* idle previews (no activity for ``persist_minutes``) are removed through ``lifecycle.reap_one``: tombstone
  rename first (one reaper wins), stamp re-read second (a concurrent hot start wins back);
* after a failover, a workspace running on two hosts keeps its newest copy;
* claims abandoned in ``created`` state after ``claim_timeout_s``, exited previews (a failed one is kept a
  minute for its logs), tombstones left by a reaper that died, and orphan networks are removed.

Besides the engines it works with what this process remembers, handed to it when it is made: the trackers (a
failed preview's container is kept a minute; a removed one is forgotten), the tombstone sightings, the
activity buffer (pings not yet flushed count as activity), and ``on_freed`` to wake the wait queue.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from docker.errors import APIError

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity, lifecycle
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Fleet
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.lifecycle import Reaped
from drape_fleet.runtime.state import HostView, PreviewRecord
from drape_fleet.runtime.status import ReapReport
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import Trackers
from drape_fleet.runtime.views import Observer


class Reaper:
    def __init__(self, settings: RuntimeSettings, fleet: Fleet, observer: Observer, trackers: Trackers,
                 tombstones: TombstoneSightings, activity_buffer: ActivityBuffer, *, on_freed: Callable[[], None],
                 clock: Clock) -> None:
        self._settings = settings
        self._fleet = fleet
        self._observer = observer
        self._trackers = trackers
        self._tombstones = tombstones
        self._activity = activity_buffer
        self._on_freed = on_freed
        self._clock = clock

    def reap(self) -> ReapReport:
        """One pass over every reachable host (see the module's docstring)."""
        report = ReapReport()
        now = self._clock.now()
        views = self._observer.views()
        self._trackers.forget_failed(older_than_s=self._settings.persist_s)
        self._tombstones.keep_only(p.id for v in views.values() for p in v.previews if p.tombstone)
        serving: dict[str, list[PreviewRecord]] = defaultdict(list)
        for view in views.values():
            if not view.reachable:
                continue
            engine = self._fleet[view.name]
            for record in view.previews:
                age = (now - record.created).total_seconds()
                try:
                    if record.tombstone:
                        if self._tombstones.stale(record):
                            lifecycle.discard(engine, record)
                            report.removed.append(f"{record.host}/{record.name} (left over by a stopped reaper)")
                    elif record.state == "created":
                        if age > self._settings.claim_timeout_s:
                            lifecycle.discard(engine, record)
                            report.removed.append(f"{record.host}/{record.name} (abandoned claim)")
                    elif not record.live:
                        if not self._trackers.kept_failure(record):
                            lifecycle.discard(engine, record)
                            report.removed.append(f"{record.host}/{record.name} ({record.state})")
                    elif record.serving:
                        serving[record.workspace].append(record)
                except RuntimeFailure as exc:
                    report.errors.append(f"{record.host}/{record.name}: {exc}")
            report.networks_removed += self._reap_networks(view, now)
        for records in serving.values():
            records.sort(key=lambda r: r.created, reverse=True)
            keep, *surplus = records
            for record in surplus:  # a host came back after its previews were placed elsewhere
                self._reap_record(record, report, now=now, force=True, why="duplicate after failover")
            self._reap_record(keep, report, now=now, force=False, why="idle")
        return report

    def _reap_record(self, record: PreviewRecord, report: ReapReport, *, now: datetime, force: bool,
                     why: str) -> None:
        engine = self._fleet[record.host]
        persist_s = self._settings.persist_s
        seen = self._activity.last_seen(record.workspace)
        if not force:
            last = max(t for t in (record.created, seen) if t is not None)
            if (now - last).total_seconds() < persist_s:
                return
            try:
                stamp = activity.read_stamp(engine, record.id)
            except (RuntimeFailure, APIError) as exc:
                report.errors.append(f"{record.host}/{record.name}: {exc}")
                return
            if stamp is not None and (now - stamp).total_seconds() < persist_s:
                return
        try:
            result = lifecycle.reap_one(engine, record, now=now, persist_s=persist_s, seen_locally=seen, force=force)
        except (RuntimeFailure, APIError) as exc:
            report.errors.append(f"{record.host}/{record.name}: {exc}")
            return
        label = f"{record.host}/{record.workspace} ({why})"
        if result is Reaped.REMOVED:
            report.removed.append(label)
            self._trackers.forget_container(record.workspace, record.id)
            self._on_freed()
        elif result is Reaped.KEPT:
            report.kept.append(label)
        else:
            report.skipped.append(label)

    def _reap_networks(self, view: HostView, now: datetime) -> int:
        """Remove preview networks whose container is gone (claims that failed half-way, crashed processes)."""
        engine = self._fleet[view.name]
        claims = {p.claim for p in view.previews}
        wanted = L.owned_filter(self._settings.owner, L.KIND_NETWORK)
        try:
            networks = engine.call(lambda api: api.networks(filters=wanted), "list networks")
        except RuntimeFailure:
            return 0
        removed = 0
        for network in networks or []:
            labels = network.get("Labels") or {}
            created = activity.parse_rfc3339(str(network.get("Created", "")))
            if labels.get(L.CLAIM) in claims or created is None:
                continue
            if (now - created).total_seconds() < self._settings.claim_timeout_s:
                continue
            with contextlib.suppress(RuntimeFailure, APIError):
                if lifecycle.remove_network(engine, str(network.get("Name"))):
                    removed += 1
        return removed
