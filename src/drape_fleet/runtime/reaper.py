"""The reaper: one pass over the fleet, safe to run from every backend process at once.

* idle previews (no activity for ``persist_minutes``) are removed through ``lifecycle.reap_one``: tombstone
  rename first (one reaper wins), stamp re-read second (a concurrent hot start wins back);
* after a failover, a workspace running on two hosts keeps its newest copy;
* claims abandoned in ``created`` state after ``claim_timeout_s``, exited previews (a failed one is kept a
  minute for its logs), tombstones left by a reaper that died, and orphan networks are removed.

It reads and updates the runtime's in-memory trackers (``tracking``), tombstone sightings (``tombstones``) and
activity buffer through the runtime's private members (same package).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from docker.errors import APIError

from drape_fleet.runtime import activity, lifecycle
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.lifecycle import Reaped
from drape_fleet.runtime.state import HostView, PreviewRecord
from drape_fleet.runtime.status import ReapReport

if TYPE_CHECKING:
    from drape_fleet.runtime.service import PreviewRuntime


def _now() -> datetime:
    return datetime.now(UTC)


def reap(runtime: PreviewRuntime) -> ReapReport:
    """One pass over every reachable host (see the module's docstring)."""
    report = ReapReport()
    now = _now()
    views = runtime.observer.views()
    runtime._trackers.forget_failed(older_than_s=runtime.settings.persist_s, now=now)
    runtime._tombstones.keep_only(p.id for v in views.values() for p in v.previews if p.tombstone)
    serving: dict[str, list[PreviewRecord]] = defaultdict(list)
    for view in views.values():
        if not view.reachable:
            continue
        engine = runtime.fleet[view.name]
        for record in view.previews:
            age = (now - record.created).total_seconds()
            try:
                if record.tombstone:
                    if runtime._tombstones.stale(record):
                        lifecycle.discard(engine, record)
                        report.removed.append(f"{record.host}/{record.name} (left over by a stopped reaper)")
                elif record.state == "created":
                    if age > runtime.settings.claim_timeout_s:
                        lifecycle.discard(engine, record)
                        report.removed.append(f"{record.host}/{record.name} (abandoned claim)")
                elif not record.live:
                    if not runtime._trackers.kept_failure(record):
                        lifecycle.discard(engine, record)
                        report.removed.append(f"{record.host}/{record.name} ({record.state})")
                elif record.serving:
                    serving[record.workspace].append(record)
            except RuntimeFailure as exc:
                report.errors.append(f"{record.host}/{record.name}: {exc}")
        report.networks_removed += _reap_networks(runtime, view)
    for _workspace, records in serving.items():
        records.sort(key=lambda r: r.created, reverse=True)
        keep, *surplus = records
        for record in surplus:  # a host came back after its previews were placed elsewhere
            _reap_record(runtime, record, report, now=now, force=True, why="duplicate after failover")
        _reap_record(runtime, keep, report, now=now, force=False, why="idle")
    return report



def _reap_record(runtime: PreviewRuntime, record: PreviewRecord, report: ReapReport, *, now: datetime,
                 force: bool, why: str) -> None:
    engine = runtime.fleet[record.host]
    seen = runtime._activity.last_seen(record.workspace)
    if not force:
        last = max(t for t in (record.created, seen) if t is not None)
        if (now - last).total_seconds() < runtime.settings.persist_s:
            return
        try:
            stamp = activity.read_stamp(engine, record.id)
        except (RuntimeFailure, APIError) as exc:
            report.errors.append(f"{record.host}/{record.name}: {exc}")
            return
        if stamp is not None and (now - stamp).total_seconds() < runtime.settings.persist_s:
            return
    try:
        result = lifecycle.reap_one(engine, record, now=now, persist_s=runtime.settings.persist_s,
                                    seen_locally=seen, force=force)
    except (RuntimeFailure, APIError) as exc:
        report.errors.append(f"{record.host}/{record.name}: {exc}")
        return
    label = f"{record.host}/{record.workspace} ({why})"
    if result is Reaped.REMOVED:
        report.removed.append(label)
        runtime._trackers.forget_container(record.workspace, record.id)
        runtime._queue.wake()
    elif result is Reaped.KEPT:
        report.kept.append(label)
    else:
        report.skipped.append(label)

def _reap_networks(runtime: PreviewRuntime, view: HostView) -> int:
    """Remove preview networks whose container is gone (claims that failed half-way, crashed processes)."""
    engine = runtime.fleet[view.name]
    claims = {p.claim for p in view.previews}
    try:
        networks = engine.call(lambda api: api.networks(filters=L.owned_filter(runtime.settings.owner,
                                                                                L.KIND_NETWORK)), "list networks")
    except RuntimeFailure:
        return 0
    removed = 0
    now = _now()
    for network in networks or []:
        labels = network.get("Labels") or {}
        created = activity.parse_rfc3339(str(network.get("Created", "")))
        if labels.get(L.CLAIM) in claims or created is None:
            continue
        if (now - created).total_seconds() < runtime.settings.claim_timeout_s:
            continue
        with contextlib.suppress(RuntimeFailure, APIError):
            if lifecycle.remove_network(engine, str(network.get("Name"))):
                removed += 1
    return removed
