"""What the runtime reports: a preview's status, a host's status, a reaper pass. Plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.state import Foreign


@dataclass(frozen=True)
class PreviewStatus:
    """Where a workspace's preview is and what it is doing. ``url`` is set once it has a published port."""

    workspace: str
    user: str
    project: str
    framework: str
    phase: Phase
    since: datetime
    host: str | None = None
    container_id: str | None = None
    url: str | None = None
    queue_position: int | None = None
    """1 = next to be placed; None when not queued."""
    waited_s: float | None = None
    """How long it has been waiting for capacity (queued) or since it was requested."""
    error: str | None = None
    created: datetime | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY


@dataclass(frozen=True)
class HostStatus:
    name: str
    reachable: bool
    healthy: bool
    error: str | None
    cordoned: bool
    cordon_reason: str | None
    memory_capacity: int
    memory_used: int
    cpu_capacity: float
    cpus_used: float
    previews: int
    claims: int
    foreign: tuple[Foreign, ...]
    disk_limit: bool
    server_version: str | None
    state: str = "up"
    """``up``, ``suspect`` (a call got no answer; a health check is deciding) or ``down`` (health checks failed)."""
    placeable: bool = True
    unplaceable: str | None = None
    """Why no new preview goes there (unreachable, cordoned, no preview role, disk cannot be limited)."""

    @property
    def memory_free(self) -> int:
        return self.memory_capacity - self.memory_used


@dataclass(frozen=True)
class StopResult:
    """What ``stop_preview`` did: ``removed`` (there was a preview and it is gone, or going: a slow removal finishes
    on its host), and the hosts it could not ask, where the stop is remembered and applied when they answer."""

    workspace: str
    removed: bool
    pending_hosts: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.removed


@dataclass
class ReapReport:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    networks_removed: int = 0
