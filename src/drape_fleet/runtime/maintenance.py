"""Cordon, uncordon, drain: taking a host out of placement for a reboot or a reinstall.

Where the cordon lives, and why: a Docker *volume* named ``drape-cordon`` on the host's own engine, labelled
with our owner, the reason and the time. Names are unique per engine, so cordoning twice is harmless; the
volume survives engine restarts and host reboots; every backend process sees it in the listing it already
makes (no extra store, nothing to lose when a backend restarts); ``docker volume ls`` shows ops the state
even without this tool. Uncordon removes it. A volume of that name that is not ours is never taken for a
cordon (nor removed): the call fails and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from docker.errors import APIError, NotFound

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity, lifecycle
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError, RuntimeFailure
from drape_fleet.runtime.projects import ProjectSource, completed, request_of
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.runtime.views import Observer


def cordon_labels(settings: RuntimeSettings, *, reason: str, now: datetime) -> dict[str, str]:
    return {L.OWNER: settings.owner, L.KIND: L.KIND_CORDON, L.REASON: reason[:200],
            L.CREATED: L.format_time(now)}


def cordon(engine: Engine, settings: RuntimeSettings, *, reason: str, now: datetime) -> None:
    labels = cordon_labels(settings, reason=reason, now=now)
    engine.call(lambda api: api.create_volume(name=L.CORDON_VOLUME, labels=labels), "cordon")
    found = _volume(engine)
    if found is None or (found.get("Labels") or {}).get(L.OWNER) != settings.owner:
        raise EngineError(engine.name, None, f"a volume named {L.CORDON_VOLUME!r} exists on {engine.name} but was "
                                             "not made by this runtime: remove it by hand, then cordon again")


def uncordon(engine: Engine, settings: RuntimeSettings) -> bool:
    """Remove the cordon; False when the host was not cordoned. A volume of that name made by anyone else is
    left alone (``EngineError``)."""
    found = _volume(engine)
    if found is None:
        return False
    if (found.get("Labels") or {}).get(L.OWNER) != settings.owner:
        raise EngineError(engine.name, None, f"the volume {L.CORDON_VOLUME!r} on {engine.name} was not made by "
                                             "this runtime; not removing it")
    try:
        engine.call(lambda api: api.remove_volume(L.CORDON_VOLUME), "uncordon")
    except NotFound:
        return False
    return True


def _volume(engine: Engine) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = engine.call(lambda api: api.inspect_volume(L.CORDON_VOLUME), "inspect cordon")
    except NotFound:
        return None
    return result


@dataclass
class DrainReport:
    host: str
    stopped: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    remaining: int = 0
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.remaining == 0


def replacement(engine: Engine, record: PreviewRecord, settings: RuntimeSettings, *,
                remembered: PreviewRequest | None, source: ProjectSource | None,
                now: datetime) -> PreviewRequest | PreviewStatus:
    """The request for a replacement of ``record`` with the same project: labels, the environment read back from the
    original (one inspect), the token from memory or ``source`` (see ``projects``). A failed status when the project
    cannot be rebuilt completely: then nothing is placed and the original stays."""
    try:
        inspected = engine.call(lambda api: api.inspect_container(record.id), "inspect")
    except (RuntimeFailure, APIError):
        inspected = None
    rebuilt = completed(request_of(record, settings, inspected=inspected, remembered=remembered), source)
    if rebuilt.complete:
        return rebuilt.request
    return PreviewStatus(workspace=record.workspace, user=record.user, project=record.project,
                         framework=record.framework, phase=Phase.FAILED, since=now, host=record.host,
                         container_id=record.id, error=f"not moved: {rebuilt.why()}", created=record.created)


Move = Callable[[PreviewRecord], PreviewStatus]
"""Places a replacement for a preview elsewhere with the same project, waits until it is ready, then removes the
original (which keeps serving until then, and stays when the replacement fails)."""


def drain(engine: Engine, observer: Observer, settings: RuntimeSettings, *, move: Move, clock: Clock,
          idle_s: float, deadline_s: float, poll_s: float, progress: Callable[[str], None],
          sleep: Callable[[float], None] = time.sleep) -> DrainReport:
    """Cordon the engine's host; stop each preview once idle for ``idle_s``; after ``deadline_s`` move what is
    left to other hosts (replacement ready first, then the original removed). Returns when the host has no
    previews, or when every one left could not be moved."""
    host = engine.name
    report = DrainReport(host=host)
    started = clock.monotonic()
    cordon(engine, settings, reason="drain", now=clock.now())
    progress(f"{host} cordoned: no new previews will be placed there")
    moving_failed: set[str] = set()
    while True:
        view = observer.host_view(host)
        live = [p for p in view.previews if p.live]
        report.remaining = len(live)
        if not live:
            break
        now = clock.now()
        past_deadline = clock.monotonic() - started >= deadline_s
        for record in (p for p in live if p.serving):
            try:
                stamp = activity.read_stamp(engine, record.id)
            except RuntimeFailure:  # unknown activity is activity: moved at the deadline, never stopped
                stamp = now
            last = max(t for t in (record.created, stamp) if t is not None)
            if (now - last).total_seconds() >= idle_s:
                lifecycle.reap_one(engine, record, now=now, persist_s=settings.persist_s, force=True, stop=True)
                report.stopped.append(record.workspace)
                progress(f"stopped {record.workspace} (idle since {L.format_time(last)})")
            elif past_deadline and record.id not in moving_failed:
                progress(f"moving {record.workspace} to another host")
                status = move(record)
                if status.phase is Phase.READY:
                    report.moved.append(f"{record.workspace} -> {status.host}")
                    progress(f"moved {record.workspace} to {status.host}")
                else:
                    moving_failed.add(record.id)
                    report.failed.append(f"{record.workspace}: {status.error}")
                    progress(f"could not move {record.workspace}: {status.error}")
        if past_deadline and all(p.id in moving_failed for p in live if p.serving):
            for record in (p for p in live if not p.serving):
                lifecycle.discard(engine, record)
            if all(not p.serving or p.id in moving_failed for p in live) and moving_failed:
                report.remaining = len(moving_failed)
                break
        sleep(poll_s)
    report.seconds = clock.monotonic() - started
    return report
