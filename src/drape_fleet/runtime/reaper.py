"""The reaper: one pass over the fleet, safe to run from every backend process at once.

* idle previews (no activity for ``persist_minutes``) are removed through ``lifecycle.reap_one``: tombstone
  rename first (one reaper wins), stamp re-read second (a concurrent hot start wins back; a stamp that cannot be
  read counts as activity);
* a workspace running on two hosts (a host came back after its previews were placed elsewhere, or a move is under
  way) keeps its newest copy, and the older ones go only once that newest one answers HTTP: never the live copy
  before its replacement is ready;
* stops are finished: copies of a workspace made before a stop that could not reach their host (``stops``), and
  containers a ``stop`` renamed but did not get to remove;
* a reap tombstone left by a reaper that died is settled only after its activity is read again: active, it gets its
  name back; idle, it goes;
* claims abandoned in ``created`` state after ``claim_timeout_s``, exited previews (a failed one is kept a minute
  for its logs), and networks no preview uses beyond the spares are removed.

Besides the engines it works with what this process remembers, handed to it when it is made: the trackers (a
failed preview's container is kept a minute; a removed one is forgotten), the tombstone sightings, the stop
intents, the activity buffer (pings not yet flushed count as activity), and ``on_freed`` to wake the wait queue.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from docker.errors import APIError, NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime import activity, holders, lifecycle, stops
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.lifecycle import Reaped
from drape_fleet.runtime.readiness import is_ready
from drape_fleet.runtime.state import HostView, PreviewRecord
from drape_fleet.runtime.status import ReapReport
from drape_fleet.runtime.stops import StopIntents
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import FAILED_KEPT_S, Trackers
from drape_fleet.runtime.views import Observer

MARKERS_KEPT_WINDOWS = 2
"""A stop marker goes at the latest this many persistence windows after its stop (see ``stops``)."""


class Reaper:
    def __init__(self, config: FleetConfig, fleet: Fleet, observer: Observer, trackers: Trackers,
                 tombstones: TombstoneSightings, intents: StopIntents, activity_buffer: ActivityBuffer, *,
                 on_freed: Callable[[], None], clock: Clock) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._observer = observer
        self._trackers = trackers
        self._tombstones = tombstones
        self._intents = intents
        self._activity = activity_buffer
        self._on_freed = on_freed
        self._clock = clock

    def reap(self, *, hosts: list[str] | None = None) -> ReapReport:
        """One pass over every host that answers (or over ``hosts``): see the module's docstring."""
        report = ReapReport()
        now = self._clock.now()
        views = self._observer.fresh_views(hosts=hosts)
        reachable = [v for v in views.values() if v.reachable]
        self._trackers.forget_failed(older_than_s=self._settings.persist_s)
        if hosts is None:
            self._tombstones.keep_only(p.id for v in reachable for p in v.previews if p.tombstone)
        stopped = self._intents.all_markers(extra=[m for v in reachable for m in v.stops])
        serving: dict[str, list[PreviewRecord]] = defaultdict(list)
        for view in reachable:
            for record in view.previews:
                try:
                    if record.stopping:  # a stop that died half-way (after the grace: else it is at work)
                        if self._tombstones.stale(record):
                            self._finish_stop(record, report)
                    elif record.live and self._intents.covers(record, stopped):
                        self._finish_stop(record, report)
                    elif record.tombstone:
                        if self._tombstones.stale(record):  # else: its reaper is at work
                            self._settle_tombstone(record, report, now)
                    elif record.state == "created":
                        if (now - record.created).total_seconds() > self._settings.claim_timeout_s:
                            self._discard(record, report, "abandoned claim")
                    elif not record.live:
                        if not self._trackers.kept_failure(record) and not self._exited_lately(record, now):
                            self._discard(record, report, record.state)
                    elif record.serving:
                        serving[record.workspace].append(record)
                except (RuntimeFailure, APIError) as exc:
                    report.errors.append(f"{record.host}/{record.name}: {exc}")
            self._reap_holders(view, report, now)
            report.networks_removed += self._reap_networks(view, now)
        for records in serving.values():
            records.sort(key=lambda r: r.created, reverse=True)
            newest, *older = records
            if older and self._ready(newest):
                for record in older:  # a host came back after its previews were placed elsewhere
                    self._reap_record(record, report, now=now, force=True, why="duplicate after failover")
            elif older:
                report.kept.extend(f"{r.host}/{r.workspace} (older copy kept: the newest on {newest.host} is not "
                                   "ready yet)" for r in older)
            self._reap_record(newest, report, now=now, force=False, why="idle")
        if hosts is None:
            self._settle_markers(views, stopped, now)
        return report

    # -- stops --------------------------------------------------------------------------------------

    def _finish_stop(self, record: PreviewRecord, report: ReapReport) -> None:
        result = lifecycle.reap_one(self._fleet[record.host], record, now=self._clock.now(),
                                    persist_s=self._settings.persist_s, force=True, stop=True)
        if result is Reaped.REMOVED:
            report.removed.append(f"{record.host}/{record.workspace} (stopped)")
            self._trackers.forget_container(record.workspace, record.id)
            self._on_freed()

    def _settle_markers(self, views: dict[str, HostView], stopped: dict[str, datetime], now: datetime) -> None:
        """Markers go when every host answered without an older copy, or when they are too old to matter."""
        everyone = all(v.reachable for v in views.values())
        covered = {p.workspace for v in views.values() for p in v.previews
                   if p.live and self._intents.covers(p, stopped)}
        horizon = MARKERS_KEPT_WINDOWS * self._settings.persist_s
        for workspace, since in self._intents.pending().items():
            if (everyone and workspace not in covered) or (now - since).total_seconds() > horizon:
                self._intents.forget(workspace)
        for view in views.values():
            for marker in view.stops:
                if (everyone and marker.workspace not in covered) or (now - marker.since).total_seconds() > horizon:
                    with contextlib.suppress(RuntimeFailure, APIError):
                        stops.remove_marker(self._fleet[view.name], marker.name)

    # -- tombstones, leftovers ----------------------------------------------------------------------

    def _settle_tombstone(self, record: PreviewRecord, report: ReapReport, now: datetime) -> None:
        """A reap tombstone whose reaper is gone: never removed without reading its activity again."""
        engine = self._fleet[record.host]
        if record.live and lifecycle.still_active(engine, record, now=now, persist_s=self._settings.persist_s,
                                                  seen_locally=self._activity.last_seen(record.workspace)):
            try:
                engine.call(lambda api: api.rename(record.id, L.container_name(record.workspace)), "rename back")
                report.kept.append(f"{record.host}/{record.workspace} (a dead reaper's tombstone, active: renamed "
                                   "back)")
                return
            except (APIError, RuntimeFailure):
                pass  # the workspace has a newer preview under its name: this copy is surplus
        self._discard(record, report, "left over by a stopped reaper")

    def _exited_lately(self, record: PreviewRecord, now: datetime) -> bool:
        """Exited less than ``FAILED_KEPT_S`` ago: the process that started it (maybe not this one) may not have
        read why yet (its follower looks every ``LOOK_S``), and a removed container tells nobody anything. Seen on
        the lab: a host's service reaped a preview that failed on start before the starting process's follower
        looked, which then reported "the container was removed while starting" instead of the reason."""
        try:
            inspected = self._fleet[record.host].call(lambda api: api.inspect_container(record.id), "inspect")
        except NotFound:
            return False
        finished = activity.parse_rfc3339(str((inspected.get("State") or {}).get("FinishedAt", "")))
        return finished is not None and 0 <= (now - finished).total_seconds() < FAILED_KEPT_S

    def _discard(self, record: PreviewRecord, report: ReapReport, why: str) -> None:
        lifecycle.discard(self._fleet[record.host], record)
        report.removed.append(f"{record.host}/{record.name} ({why})")

    # -- idle and duplicates ------------------------------------------------------------------------

    def _ready(self, record: PreviewRecord) -> bool:
        if record.public_port is None:
            return False
        address = str(self._config.host(record.host).private_address)
        return is_ready(self._fleet[record.host], record.id, address, record.public_port,
                        self._settings.frameworks[record.framework], budget=self._settings.preview_read_timeout_s)

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
            except (RuntimeFailure, APIError) as exc:  # unknown activity is activity
                report.errors.append(f"{record.host}/{record.name}: activity unknown ({exc}); kept")
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

    # -- networks -----------------------------------------------------------------------------------

    def _reap_holders(self, view: HostView, report: ReapReport, now: datetime) -> None:
        """Network holders: a preview whose holder is gone has no network left (removed); a holder no preview joined
        is a spare (the newest ``spare_networks`` per port kept, the others removed after ``claim_timeout_s``)."""
        engine = self._fleet[view.name]
        running = {h.claim for h in view.holders if h.state == "running"}
        for record in view.previews:
            if record.holder is not None and record.live and record.claim not in running \
                    and (now - record.created).total_seconds() > self._settings.claim_timeout_s:
                with contextlib.suppress(RuntimeFailure, APIError):
                    self._discard(record, report, "its network holder is gone")
        joined = {p.claim for p in view.previews}
        kept: dict[int, int] = {}
        for holder in sorted(view.holders, key=lambda h: h.created, reverse=True):
            if holder.claim in joined:
                continue
            if holder.state == "running" and kept.get(holder.port, 0) < self._settings.spare_networks:
                kept[holder.port] = kept.get(holder.port, 0) + 1
                continue
            if holder.state == "running" and (now - holder.created).total_seconds() < self._settings.claim_timeout_s:
                continue
            with contextlib.suppress(RuntimeFailure, APIError):
                holders.discard_holder(engine, holder.claim)  # housekeeping: counted with the networks
                report.networks_removed += 1

    def _reap_networks(self, view: HostView, now: datetime) -> int:
        """Remove preview networks nothing uses (claims that failed half-way, crashed processes) once older than
        ``claim_timeout_s`` (a claim or a spare may be being made on one right now)."""
        engine = self._fleet[view.name]
        claims = {p.claim for p in view.previews} | {h.claim for h in view.holders}
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
