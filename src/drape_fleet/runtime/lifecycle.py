"""What happens to a preview on one host: claim, start, confirm (hot start), reap, remove. Thin executors.

Capacity across processes: the claim protocol
---------------------------------------------
Several backend processes (and many threads in each) place previews at once, and no host may end up over
its memory capacity. No lock server exists and none is needed: the claim *is* the preview container.

1. Create the preview's container (not started). Creation is atomic in the engine and the container, with
   its ``drape.memory`` label, is visible to every later listing of that engine.
2. List the host's containers again and sum the reservations of every live one, this claim included.
3. If the sum exceeds the capacity, remove the claim and try the next host; otherwise start it.

Why this is safe: of any two claims on one host, the one whose listing (step 2) comes later sees the other
(the other's creation had already returned before its own listing, which precedes this one). So the last
claimant of any set always counts all of them, and the set of claims that pass never exceeds the capacity.
Two claimants may both back off (each sees the other); they retry after a random delay, so the cost of a
conflict is a short wait, never an overcommitted host. Within one process a per-host lock serialises claims,
so this only happens between processes. The same argument, applied across hosts to a workspace's containers
(``uniqueness``), keeps a workspace from running twice when two processes start it at once.

Nothing here is on the hot path: a hot start (``confirm``) does one archive write and one inspect.

A claim abandoned by a crashed process stays in ``created`` state; it counts (safe side) until the reaper
removes it after ``claim_timeout_s``.
"""

from __future__ import annotations

import contextlib
import enum
import random
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from docker.errors import APIError, NotFound

from drape_fleet.config.models import Host
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError
from drape_fleet.runtime.spec import NetworkSpec, PreviewRequest, container_spec, network_spec, pick_subnet
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.views import Observer

SUBNET_ATTEMPTS = 8
TOMBSTONE_GRACE_S = 30.0
"""A tombstoned container is being reaped or stopped right now; after this long it is a leftover."""


class Outcome(enum.Enum):
    PLACED = "placed"
    FULL = "full"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True)
class ClaimResult:
    outcome: Outcome
    record: PreviewRecord | None = None
    reason: str = ""


def new_claim_id() -> str:
    return secrets.token_hex(6)


# ---------------------------------------------------------------------------------------------------
# Removing things (idempotent: gone is gone)
# ---------------------------------------------------------------------------------------------------

def remove_container(engine: Engine, container_id: str) -> None:
    try:
        engine.call(lambda api: api.remove_container(container_id, force=True, v=True), "remove container")
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code == 409:  # removal already in progress (another process): same outcome
            return
        raise


def remove_network(engine: Engine, name: str) -> bool:
    """Remove a preview network; False when it is still in use (the reaper takes it later)."""
    try:
        engine.call(lambda api: api.remove_network(name), "remove network")
    except NotFound:
        return True
    except APIError as exc:
        if exc.status_code in (403, 409):
            return False
        raise
    except EngineError as exc:
        if "active endpoints" in str(exc):
            return False
        raise
    return True


def discard(engine: Engine, record: PreviewRecord) -> None:
    remove_container(engine, record.id)
    remove_network(engine, record.network)


# ---------------------------------------------------------------------------------------------------
# Claim and start
# ---------------------------------------------------------------------------------------------------

def make_network(engine: Engine, request: PreviewRequest, settings: RuntimeSettings, *, claim: str,
                 address: str, rng: random.Random) -> NetworkSpec:
    """Create the workspace's network on a random free /28 (the engine refuses overlaps; try another)."""
    last = ""
    for _ in range(SUBNET_ATTEMPTS):
        spec = network_spec(request, settings, claim=claim, subnet=pick_subnet(settings.subnet_pool, rng),
                            publish_address=address)
        kwargs = spec.create_kwargs()
        try:
            engine.call(lambda api, kw=kwargs: api.create_network(**kw), "create network")  # type: ignore[misc]
        except APIError as exc:
            last = str(exc.explanation or exc)
            if "overlap" in last.lower():
                continue
            raise
        return spec
    raise EngineError(engine.name, None, f"no free subnet in {settings.subnet_pool} after "
                                         f"{SUBNET_ATTEMPTS} tries ({last})")


def claim(engine: Engine, host: Host, request: PreviewRequest, settings: RuntimeSettings, *,
          observer: Observer, created: datetime, rng: random.Random) -> ClaimResult:
    """Steps 1-3 of the claim protocol on ``host`` (the caller holds this process's lock for the host)."""
    claim_id = new_claim_id()
    address = str(host.private_address)  # published ports listen on the private network only
    network = make_network(engine, request, settings, claim=claim_id, address=address, rng=rng)
    try:
        container_id = _create(engine, request, settings, claim=claim_id, created=created, network=network.name,
                               address=address)
    except _NameTaken as taken:
        remove_network(engine, network.name)
        previews, foreign = observer.records(engine, workspace=request.workspace)
        if any(p.name == taken.args[0] for p in previews):
            return ClaimResult(Outcome.DUPLICATE, reason=f"{host.name} already has {taken.args[0]}")
        # Something that is not one of our previews holds the name: never touch it; use another host.
        why = next((f.reason for f in foreign if f.name == taken.args[0]), "not made by this runtime")
        return ClaimResult(Outcome.FAILED, reason=f"{host.name}: the name {taken.args[0]} is held by a foreign "
                                                  f"container ({why})")
    except APIError as exc:
        remove_network(engine, network.name)
        return ClaimResult(Outcome.FAILED, reason=f"{host.name}: {exc.explanation or exc}")
    except BaseException:
        remove_network(engine, network.name)
        raise
    observer.trust(container_id)
    try:
        view = observer.host_view(host.name)
    except BaseException:
        _quietly_remove(engine, container_id, network.name)
        raise
    cpu_capacity = view.cpu_capacity * settings.cpu_overcommit
    if view.memory_used > view.memory_capacity or view.cpus_used > cpu_capacity + 1e-9:
        _quietly_remove(engine, container_id, network.name)
        return ClaimResult(Outcome.FULL, reason=(
            f"{host.name} is full ({view.memory_used / 2**20:.0f} of {view.memory_capacity / 2**20:.0f} MiB, "
            f"{view.cpus_used:g} of {cpu_capacity:g} nominal cores, this claim included)"))
    record = next((p for p in view.previews if p.id == container_id), None)
    if record is None:  # removed by someone else in between: treat as a conflict and look again
        return ClaimResult(Outcome.DUPLICATE, reason=f"claim on {host.name} disappeared")
    return ClaimResult(Outcome.PLACED, record=record)


class _NameTaken(Exception):
    pass


def _create(engine: Engine, request: PreviewRequest, settings: RuntimeSettings, *, claim: str, created: datetime,
            network: str, address: str) -> str:
    disk_limit = bool(engine.facts.get("disk_limit"))
    for _ in range(3):
        spec = container_spec(request, settings, claim=claim, created=created, network=network,
                              publish_address=address, disk_limit=disk_limit)
        try:
            result = engine.call(lambda api, s=spec: api.create_container_from_config(s.body, s.name),  # type: ignore[misc]
                                 "create container")
            return str(result["Id"])
        except APIError as exc:
            if exc.status_code == 409:
                existing = _existing(engine, spec.name)
                if existing is not None and existing["State"]["Status"] in ("exited", "dead"):
                    # a dead preview of this workspace holds the name: clear it and create again
                    network_mode = existing["HostConfig"].get("NetworkMode", "")
                    if (existing.get("Config", {}).get("Labels") or {}).get(L.OWNER) == settings.owner:
                        remove_container(engine, existing["Id"])
                        if network_mode.startswith(L.NETWORK_PREFIX):
                            remove_network(engine, network_mode)
                        continue
                raise _NameTaken(spec.name) from exc
            raise
        except EngineError as exc:
            if "storage-opt" in str(exc) or "storage opt" in str(exc).lower():
                engine.facts["disk_limit"] = disk_limit = False
                continue
            raise
    raise EngineError(engine.name, None, f"could not create {L.container_name(request.workspace)}")


def _existing(engine: Engine, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = engine.call(lambda api: api.inspect_container(name), "inspect")
    except NotFound:
        return None
    return result


def _quietly_remove(engine: Engine, container_id: str, network: str) -> None:
    try:
        remove_container(engine, container_id)
        remove_network(engine, network)
    except Exception:  # noqa: S110 - best effort; a leftover claim is removed by the reaper
        pass


def start(engine: Engine, record: PreviewRecord) -> int:
    """Start a claimed container; return its published port on the host."""
    engine.call(lambda api: api.start(record.id), "start container")
    inspected = engine.call(lambda api: api.inspect_container(record.id), "inspect")
    port = published_port(inspected, record.port)
    if port is None:
        raise EngineError(engine.name, None, f"{record.name} started without a published port")
    return port


def published_port(inspected: dict[str, Any], port: int) -> int | None:
    bindings = ((inspected.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


# ---------------------------------------------------------------------------------------------------
# Hot start and reaping: the two sides of one race
# ---------------------------------------------------------------------------------------------------

def confirm(engine: Engine, record_id: str, workspace: str, now: datetime) -> dict[str, Any] | None:
    """Hot start: write the activity stamp, *then* check the container is still the workspace's running preview.

    A reaper renames a container to its tombstone *before* it re-reads the stamp. So either this check sees
    the tombstone name (and the caller places a new preview), or the rename came after this stamp was
    written and the reaper's re-read sees fresh activity and gives the container back.
    """
    try:
        activity.write_stamp(engine, record_id, now)
        inspected = engine.call(lambda api: api.inspect_container(record_id), "inspect")
    except NotFound:
        return None
    except APIError as exc:
        if exc.status_code == 409:
            return None
        raise
    if not _serving(inspected, workspace):
        return None
    result: dict[str, Any] = inspected
    return result


def still_serving(engine: Engine, record_id: str, workspace: str) -> bool:
    """Is the container still the workspace's running preview? One inspect and nothing written: asking is not
    activity (a hot start's ``confirm`` stamps first). False when it is gone, stopped or tombstoned."""
    try:
        inspected = engine.call(lambda api: api.inspect_container(record_id), "inspect")
    except NotFound:
        return False
    return _serving(inspected, workspace)


def _serving(inspected: dict[str, Any], workspace: str) -> bool:
    """Running, and under the workspace's name (a reaper renames a container before it removes it)."""
    return (inspected.get("Name", "").lstrip("/") == L.container_name(workspace)
            and (inspected.get("State") or {}).get("Status") == "running")


class Reaped(enum.Enum):
    REMOVED = "removed"
    KEPT = "kept"
    SKIPPED = "skipped"
    GONE = "gone"


def reap_one(engine: Engine, record: PreviewRecord, *, now: datetime, persist_s: float,
             seen_locally: datetime | None = None, force: bool = False) -> Reaped:
    """Stop and remove one preview, safely against other reapers and concurrent hot starts.

    1. Rename it to its tombstone name: renames are atomic, so of several reapers exactly one succeeds; the
       others get an error and skip it.
    2. Unless ``force``: re-read the activity stamp. If it became fresh (a hot start touched it before the
       rename), rename it back and keep it; if a new preview took the name meanwhile, remove this one.
    3. Stop and remove the container and its network.
    """
    tombstone = L.tombstone_name(record.workspace, record.claim)
    if record.name != tombstone:
        try:
            engine.call(lambda api: api.rename(record.id, tombstone), "rename to tombstone")
        except NotFound:
            return Reaped.GONE
        except (APIError, EngineError):
            return Reaped.SKIPPED
    if not force:
        stamp = activity.read_stamp(engine, record.id)
        last = max(t for t in (record.created, stamp, seen_locally) if t is not None)
        if (now - last).total_seconds() < persist_s:
            try:
                engine.call(lambda api: api.rename(record.id, L.container_name(record.workspace)), "rename back")
                return Reaped.KEPT
            except (APIError, EngineError):
                pass  # a new preview has the name now: this one is surplus
    with contextlib.suppress(NotFound, APIError):
        engine.call(lambda api: api.stop(record.id, timeout=3), "stop container")
    remove_container(engine, record.id)
    remove_network(engine, record.network)
    return Reaped.REMOVED
