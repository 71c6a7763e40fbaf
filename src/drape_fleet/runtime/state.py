"""Views of the fleet rebuilt from the engines' own records (container, network and volume labels). Pure.

A backend that restarts loses nothing: ``parse_container`` reads back everything the runtime needs from
one ``GET /containers/json`` entry, and ``HostView`` sums what each host has reserved. Objects that carry
our owner label but do not look like something the runtime made (missing or malformed labels, a name or a
network that does not match them, host paths mounted, privileges) are *foreign*: never handed to a user,
never reaped, reported to ops; their memory label, when readable, still counts against the host (safe side).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drape_fleet.config.runtime import ALLOWED_CAPABILITIES, RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.spec import PNPM_STORE_MOUNT, WORKSPACE_MOUNT

_ENV_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_CONTAINER_ID_RE = re.compile(r"^[0-9a-f]{64}$")

LIVE_STATES = frozenset({"created", "running", "restarting", "paused", "removing"})
"""States whose memory reservation counts. ``created`` is a placement claim (see ``placement``)."""


@dataclass(frozen=True)
class PreviewRecord:
    host: str
    id: str
    name: str
    state: str
    workspace: str
    user: str
    project: str
    framework: str
    created: datetime
    memory: int
    cpus: float
    port: int
    claim: str
    public_port: int | None = None
    network: str = ""
    """The network it was placed on (``drape-net-<claim>``; older previews ``drape-net-<workspace>-<claim>``)."""
    repo: str | None = None
    ref: str | None = None
    env_keys: tuple[str, ...] = ()
    repo_auth: bool = False
    holder: str | None = None
    """The network holder whose namespace it joined (its container id), or None: on its own network."""
    """Started with a repository token (which is not stored anywhere: a replacement needs it issued again)."""

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def tombstone(self) -> bool:
        """Being reaped or stopped: renamed, no longer the workspace's preview."""
        return self.name.startswith((L.TOMBSTONE_PREFIX, L.STOPPING_PREFIX))

    @property
    def stopping(self) -> bool:
        """Renamed by an explicit stop: removed by whoever sees it, whatever its activity."""
        return self.name.startswith(L.STOPPING_PREFIX)

    @property
    def serving(self) -> bool:
        return self.state == "running" and not self.tombstone


@dataclass(frozen=True)
class Holder:
    """A network holder: a parked container owning a preview network and its published port. A spare while no
    preview has joined it."""

    host: str
    id: str
    name: str
    state: str
    claim: str
    port: int
    public_port: int | None
    created: datetime
    memory: int
    cpus: float = 0.01

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def network(self) -> str:
        return L.network_name(self.claim)


@dataclass(frozen=True)
class Foreign:
    host: str
    kind: str
    id: str
    name: str
    reason: str
    memory: int = 0
    cpus: float = 0.0
    live: bool = False


@dataclass(frozen=True)
class Cordon:
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class StopMarker:
    """A stop that could not reach every host: containers of ``workspace`` made before ``since`` are removed
    wherever they are seen (see ``stops``)."""

    name: str
    workspace: str
    since: datetime


@dataclass(frozen=True)
class HostView:
    name: str
    reachable: bool
    memory_capacity: int
    cpu_capacity: float
    roles: tuple[str, ...] = ("preview",)
    error: str | None = None
    cordon: Cordon | None = None
    previews: tuple[PreviewRecord, ...] = ()
    foreign: tuple[Foreign, ...] = ()
    disk_limit: bool = False
    """The engine can limit a preview's writable layer (overlay2 on XFS with project quotas)."""
    disk_required: bool = False
    """The fleet requires that limit (``runtime.disk_limit = "required"``): without it the host takes nothing."""
    stops: tuple[StopMarker, ...] = ()
    holders: tuple[Holder, ...] = ()
    memory_used: int = field(init=False)
    """Reserved by live previews and live foreign look-alikes (summed once: placement reads it per decision)."""
    cpus_used: float = field(init=False)

    def __post_init__(self) -> None:
        # Network holders are not reserved: each runs ``sleep`` under an 8 MiB ceiling, part of the share of the
        # host that ``capacity`` leaves the system (a preview's own reservation is what it may use).
        live = [p for p in self.previews if p.live] + [f for f in self.foreign if f.live]
        object.__setattr__(self, "memory_used", sum(x.memory for x in live))
        object.__setattr__(self, "cpus_used", sum(x.cpus for x in live))

    def spares(self, port: int) -> list[Holder]:
        """Running holders publishing ``port`` that no preview of this host has joined, oldest first."""
        used = {p.claim for p in self.previews}
        return sorted((h for h in self.holders if h.state == "running" and h.port == port and h.claim not in used
                       and h.public_port is not None), key=lambda h: (h.created, h.id))

    @property
    def unplaceable(self) -> str | None:
        """Why no new preview goes here (None: it may take one)."""
        if not self.reachable:
            return f"unreachable ({self.error})" if self.error else "unreachable"
        if "preview" not in self.roles:
            return "no preview role"
        if self.cordon is not None:
            return f"cordoned ({self.cordon.reason})" if self.cordon.reason else "cordoned"
        if self.disk_required and not self.disk_limit:
            return ("its engine cannot limit a preview's disk (needs overlay2 on XFS with project quotas), and "
                    "runtime.disk_limit is 'required'")
        return None

    @property
    def placeable(self) -> bool:
        return self.unplaceable is None

    def serving(self) -> list[PreviewRecord]:
        return [p for p in self.previews if p.serving]


def _name(entry: Mapping[str, Any]) -> str:
    names = entry.get("Names") or []
    return str(names[0]).lstrip("/") if names else ""


def parse_container(host: str, entry: Mapping[str, Any],
                    settings: RuntimeSettings) -> PreviewRecord | Holder | Foreign:
    """One ``GET /containers/json`` entry that carries our owner label: a preview, a network holder, or foreign with
    a reason."""
    labels: Mapping[str, str] = entry.get("Labels") or {}
    if labels.get(L.KIND) == L.KIND_HOLDER and labels.get(L.OWNER) == settings.owner:
        return parse_holder(host, entry)
    cid = str(entry.get("Id", ""))
    name = _name(entry)
    state = str(entry.get("State", ""))
    memory = _int(labels.get(L.MEMORY))
    cpus = _float(labels.get(L.CPUS))

    def foreign(reason: str) -> Foreign:
        return Foreign(host, "container", cid, name, reason, memory=memory or 0, cpus=cpus or 0.0,
                       live=state in LIVE_STATES)

    if labels.get(L.OWNER) != settings.owner:
        return foreign("owner label is not ours")
    if labels.get(L.KIND) != L.KIND_PREVIEW:
        return foreign(f"unknown kind {labels.get(L.KIND)!r}")
    missing = [key for key in L.PREVIEW_LABELS if not labels.get(key)]
    if missing:
        return foreign(f"missing labels {', '.join(missing)}")
    workspace, claim = labels[L.WORKSPACE], labels[L.CLAIM]
    if not L.WORKSPACE_RE.fullmatch(workspace):
        return foreign("workspace label is not a safe id")
    if not L.PRINCIPAL_RE.fullmatch(labels[L.USER]) or not L.PRINCIPAL_RE.fullmatch(labels[L.PROJECT]):
        return foreign("user or project label is not a safe id")
    if not L.CLAIM_RE.fullmatch(claim):
        return foreign("claim label is malformed")
    if labels[L.FRAMEWORK] not in settings.frameworks:
        return foreign(f"framework {labels[L.FRAMEWORK]!r} is not configured")
    try:
        created = L.parse_time(labels[L.CREATED])
    except ValueError:
        return foreign("created label is not a timestamp")
    port = _int(labels.get(L.PORT))
    if memory is None or memory <= 0 or cpus is None or cpus <= 0 or port is None:
        return foreign("resource labels are malformed")
    if name not in (L.container_name(workspace), L.tombstone_name(workspace, claim),
                    L.stopping_name(workspace, claim)):
        return foreign(f"name {name!r} does not match its workspace label")
    network_mode = str((entry.get("HostConfig") or {}).get("NetworkMode"))
    joined = network_mode.startswith("container:") and _CONTAINER_ID_RE.fullmatch(network_mode[10:]) is not None
    if not joined and network_mode not in (L.network_name(claim), L.legacy_network_name(workspace, claim)):
        return foreign(f"network {network_mode!r} is not the workspace's own")
    env_keys = tuple(k for k in labels.get(L.ENV_KEYS, "").split(",") if k)
    if not all(_ENV_KEY_RE.fullmatch(k) for k in env_keys):
        return foreign("env-keys label is malformed")
    kept = L.workspace_volume_name(workspace, labels[L.USER], labels[L.PROJECT])
    for mount in entry.get("Mounts") or []:
        store = mount.get("Destination") == PNPM_STORE_MOUNT and not mount.get("RW")
        own_workspace = (mount.get("Destination") == WORKSPACE_MOUNT and mount.get("Type") == "volume"
                         and mount.get("Name") == kept and mount.get("Driver", "local") == "local")
        if not (store or own_workspace):
            return foreign(f"mounts {mount.get('Name') or mount.get('Source')!r} at {mount.get('Destination')!r}")
    public_port = _int(labels.get(L.PUBLIC_PORT)) if joined else None
    for binding in entry.get("Ports") or []:
        if binding.get("PrivatePort") == port and binding.get("Type", "tcp") == "tcp" and binding.get("PublicPort"):
            public_port = int(binding["PublicPort"])
    if joined and public_port is None:
        return foreign("joins a network holder but has no public-port label")
    return PreviewRecord(host=host, id=cid, name=name, state=state, workspace=workspace, user=labels[L.USER],
                         project=labels[L.PROJECT], framework=labels[L.FRAMEWORK], created=created, memory=memory,
                         cpus=cpus, port=port, claim=claim, public_port=public_port,
                         network=L.network_name(claim) if joined else network_mode,
                         holder=network_mode[10:] if joined else None,
                         repo=labels.get(L.REPO) or None, ref=labels.get(L.REF) or None, env_keys=env_keys,
                         repo_auth=labels.get(L.REPO_AUTH) == "token")


def parse_holder(host: str, entry: Mapping[str, Any]) -> Holder | Foreign:
    """A network holder's entry (kind ``netns``): its claim, name, network and published port must agree."""
    labels: Mapping[str, str] = entry.get("Labels") or {}
    cid, name, state = str(entry.get("Id", "")), _name(entry), str(entry.get("State", ""))
    claim, port, memory = labels.get(L.CLAIM, ""), _int(labels.get(L.PORT)), _int(labels.get(L.MEMORY))
    problem = None
    try:
        created = L.parse_time(labels.get(L.CREATED, ""))
    except ValueError:
        created, problem = None, "created label is not a timestamp"
    if not L.CLAIM_RE.fullmatch(claim) or name != L.holder_name(claim):
        problem = "name or claim of a network holder is malformed"
    elif (entry.get("HostConfig") or {}).get("NetworkMode") != L.network_name(claim):
        problem = "a network holder on another network"
    elif port is None or memory is None or memory <= 0:
        problem = "resource labels are malformed"
    if problem is not None or created is None or port is None or memory is None:
        return Foreign(host, "container", cid, name, problem or "malformed", memory=memory or 0,
                       live=state in LIVE_STATES)
    public_port = next((int(b["PublicPort"]) for b in entry.get("Ports") or []
                        if b.get("PrivatePort") == port and b.get("PublicPort")), None)
    return Holder(host=host, id=cid, name=name, state=state, claim=claim, port=port, public_port=public_port,
                  created=created, memory=memory)


def inspect_problems(inspected: Mapping[str, Any], record: PreviewRecord, settings: RuntimeSettings) -> list[str]:
    """Checks only ``GET /containers/{id}/json`` can answer: a container that claims to be ours must also be
    confined the way ours are. Run once per container id (configuration does not change after create)."""
    host_config: Mapping[str, Any] = inspected.get("HostConfig") or {}
    problems = []
    if host_config.get("Privileged"):
        problems.append("privileged")
    extra_caps = {c.upper().removeprefix("CAP_") for c in host_config.get("CapAdd") or []} - ALLOWED_CAPABILITIES
    if extra_caps:
        problems.append(f"capabilities {', '.join(sorted(extra_caps))}")
    if "ALL" not in {c.upper() for c in host_config.get("CapDrop") or []}:
        problems.append("capabilities not dropped")
    if not any(str(o).startswith("no-new-privileges") for o in host_config.get("SecurityOpt") or []):
        problems.append("no-new-privileges not set")
    if host_config.get("Memory") != record.memory:
        problems.append(f"memory limit {host_config.get('Memory')} differs from its label {record.memory}")
    for bind in host_config.get("Binds") or []:
        if not str(bind).endswith(f":{PNPM_STORE_MOUNT}:ro"):
            problems.append(f"bind {bind!r}")
    kept = L.workspace_volume_name(record.workspace, record.user, record.project)
    for mount in host_config.get("Mounts") or []:
        if (mount.get("Type"), mount.get("Source"), mount.get("Target")) != ("volume", kept, WORKSPACE_MOUNT):
            problems.append(f"mount {mount.get('Source')!r} at {mount.get('Target')!r}")
    if host_config.get("PidMode") or host_config.get("IpcMode") == "host" or host_config.get("UsernsMode"):
        problems.append("shares a host namespace")
    return problems


def parse_stop_markers(volumes: Iterable[Mapping[str, Any]], owner: str) -> tuple[StopMarker, ...]:
    markers = []
    for volume in volumes:
        labels = volume.get("Labels") or {}
        name = str(volume.get("Name", ""))
        workspace = labels.get(L.WORKSPACE, "")
        if labels.get(L.OWNER) != owner or labels.get(L.KIND) != L.KIND_STOP or not L.WORKSPACE_RE.fullmatch(workspace):
            continue
        if not name.startswith(L.STOP_MARKER_PREFIX + workspace + "-"):
            continue
        try:
            markers.append(StopMarker(name=name, workspace=workspace, since=L.parse_time(labels.get(L.CREATED, ""))))
        except ValueError:
            continue
    return tuple(markers)


def parse_cordon(volumes: Iterable[Mapping[str, Any]], owner: str) -> Cordon | None:
    for volume in volumes:
        labels = volume.get("Labels") or {}
        if volume.get("Name") == L.CORDON_VOLUME and labels.get(L.OWNER) == owner \
                and labels.get(L.KIND) == L.KIND_CORDON:
            try:
                since: datetime | None = L.parse_time(labels.get(L.CREATED, ""))
            except ValueError:
                since = None
            return Cordon(reason=labels.get(L.REASON, ""), since=since)
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
