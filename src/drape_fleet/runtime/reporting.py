"""What ``PreviewRuntime.previews()`` and ``hosts()`` report: the hosts' listings, merged with what this process
tracks. A listed preview this process tracks reports its tracker's phase; one it does not track (another
process's, or from before a restart) is probed at once: ``ready`` when its dev server answers HTTP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.readiness import Phase, is_ready
from drape_fleet.runtime.state import HostView, PreviewRecord
from drape_fleet.runtime.status import HostStatus, PreviewStatus
from drape_fleet.runtime.tracking import Trackers, preview_url
from drape_fleet.runtime.views import Observer


def previews(config: FleetConfig, observer: Observer, trackers: Trackers, *, probe: bool) -> list[PreviewStatus]:
    """Every preview on every reachable host, plus the ones this process knows are lost or on their way."""
    views = observer.fresh_views()
    result: dict[str, PreviewStatus] = {}
    unknown: list[PreviewRecord] = []
    with trackers.lock:
        for view in views.values():
            for record in view.previews:
                if not record.live or record.tombstone:
                    continue
                tracker = trackers.get(record.workspace)
                if tracker is not None and tracker.container_id == record.id:
                    result[record.workspace] = trackers.status(tracker)
                else:
                    unknown.append(record)
        for tracker in trackers.all():
            workspace = tracker.request.workspace
            if workspace not in result and (tracker.phase.active or trackers.status(tracker).phase is Phase.LOST):
                result[workspace] = trackers.status(tracker)

    def phase_of(record: PreviewRecord) -> Phase:
        if record.state == "created":
            return Phase.PLACING
        if probe and record.state == "running" and record.public_port is not None:
            address = str(config.host(record.host).private_address)
            if is_ready(observer.engine(record.host), record.id, address, record.public_port,
                        config.runtime.frameworks[record.framework], budget=config.runtime.preview_read_timeout_s):
                return Phase.READY
        return Phase.STARTING

    # Previews this process does not track are probed at once: each probe has one total deadline however the dev
    # server answers, so a preview trickling bytes holds this call no longer than that.
    with ThreadPoolExecutor(max_workers=16) as pool:
        for record, phase in zip(unknown, pool.map(phase_of, unknown), strict=True):
            result.setdefault(record.workspace, record_status(config, record, phase))
    return sorted(result.values(), key=lambda s: (s.host or "", s.workspace))


def record_status(config: FleetConfig, record: PreviewRecord, phase: Phase) -> PreviewStatus:
    """The status of a preview this process does not track, from its listing."""
    return PreviewStatus(workspace=record.workspace, user=record.user, project=record.project,
                         framework=record.framework, phase=phase, since=record.created, host=record.host,
                         container_id=record.id, url=preview_url(config, record.host, record.public_port),
                         created=record.created)


def host_status(config: FleetConfig, view: HostView, engine: Engine) -> HostStatus:
    """A host's view as ``hosts()`` reports it (CPU capacity in nominal cores, overcommit included)."""
    return HostStatus(
        name=view.name, reachable=view.reachable, healthy=engine.health.healthy, error=view.error,
        cordoned=view.cordon is not None, cordon_reason=view.cordon.reason if view.cordon else None,
        memory_capacity=view.memory_capacity, memory_used=view.memory_used,
        cpu_capacity=view.cpu_capacity * config.runtime.cpu_overcommit, cpus_used=view.cpus_used,
        previews=len(view.serving()), claims=sum(1 for p in view.previews if p.state == "created"),
        foreign=view.foreign, disk_limit=view.disk_limit,
        server_version=engine.facts.get("server_version"), state=str(engine.state),
        placeable=view.placeable, unplaceable=view.unplaceable)
