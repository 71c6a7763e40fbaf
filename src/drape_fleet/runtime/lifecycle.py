"""What happens to a preview on one host: its network, the claim, start, confirm (hot start), reap, remove. Thin
executors; the launcher sequences them.

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
so this only happens between processes. The same argument, applied across hosts to a workspace's containers,
keeps a workspace from running twice when two processes start it at once (the launcher's rival check).

Networks and their holders (spares): ``holders``.

Nothing here is on the hot path: a hot start (``confirm``) is one inspect, with a stamp first only when this
process has not stamped that container recently (``service``). A claim abandoned by a crashed process stays in
``created`` state; it counts (safe side) until the reaper removes it after ``claim_timeout_s``.
"""

from __future__ import annotations

import enum
import functools
import io
import secrets
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from docker.errors import APIError, ImageNotFound, NotFound

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError, RuntimeFailure
from drape_fleet.runtime.spec import (
    REPO_CA_FILE,
    REPO_TOKEN_FILE,
    STOP_TIMEOUT_S,
    PreviewRequest,
    Secret,
    container_spec,
)
from drape_fleet.runtime.state import HostView, PreviewRecord

TOMBSTONE_GRACE_S = 30.0
"""A tombstoned container is being reaped or stopped right now; after this long it is a leftover."""


class Outcome(enum.Enum):
    PLACED = "placed"
    FULL = "full"
    DUPLICATE = "duplicate"
    """Another process is placing the workspace, or took the same spare network: look again."""
    UNSURE = "unsure"
    """A host that may hold the workspace did not answer: placing now could make a second copy."""
    FAILED = "failed"


@dataclass(frozen=True)
class ClaimResult:
    outcome: Outcome
    record: PreviewRecord | None = None
    reason: str = ""


def new_claim_id() -> str:
    return secrets.token_hex(6)


# ---------------------------------------------------------------------------------------------------
# Removing things (idempotent: gone is gone). Removals get the slow-call budget: a preview with a real project's
# node_modules takes longer to remove than any ordinary call may take.
# ---------------------------------------------------------------------------------------------------

def remove_container(engine: Engine, container_id: str) -> None:
    try:
        engine.call(lambda api: api.remove_container(container_id, force=True, v=True), "remove container",
                    slow=True)
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code == 409:  # removal already in progress (another process): same outcome
            return
        raise


def remove_network(engine: Engine, name: str) -> bool:
    """Remove a preview network; False when it is still in use (the reaper takes it later)."""
    try:
        engine.call(lambda api: api.remove_network(name), "remove network", slow=True)
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
    if record.holder is not None:
        remove_container(engine, L.holder_name(record.claim))
    remove_network(engine, record.network)


def quietly_discard(engine: Engine, container_id: str, network: str | None) -> bool:
    """Best effort (a leftover claim or network is the reaper's). Whether the container is gone."""
    try:
        remove_container(engine, container_id)
        if network:
            remove_network(engine, network)
    except (RuntimeFailure, APIError):
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Claim and start
# ---------------------------------------------------------------------------------------------------

class NameTaken(Exception):
    """Another container holds the workspace's name on this host."""


class NetworkGone(Exception):
    """The spare network was removed between choosing it and using it."""


class ImageMissing(Exception):
    """The engine does not have the preview's image (a host the templates were not shipped to)."""


def create(engine: Engine, request: PreviewRequest, settings: RuntimeSettings, *, network: str, created: datetime,
           address: str, holder: tuple[str, int] | None = None) -> str:
    """Step 1: create the preview's container on ``network``, in ``holder``'s namespace when given (its id and
    public port). A dead preview of the workspace holding the name is cleared first. Returns its id. Where the
    fleet requires a disk limit, an engine that refuses it fails the claim (and the host stops taking previews);
    elsewhere the preview is made without one."""
    required = settings.disk_limit == "required"
    disk_limit = required or bool(engine.facts.get("disk_limit"))
    claim = network.removeprefix(L.NETWORK_PREFIX)  # a preview network's name is its claim's
    for _ in range(3):
        spec = container_spec(request, settings, claim=claim, created=created, network=network,
                              publish_address=address, disk_limit=disk_limit, holder=holder)
        try:
            result = engine.call(lambda api, s=spec: api.create_container_from_config(s.body, s.name),  # type: ignore[misc]
                                 "create container")
            return str(result["Id"])
        except ImageNotFound as exc:  # a 404 too, but no other claim's doing: trying again will not mend it
            raise ImageMissing(settings.frameworks[request.framework].image) from exc
        except NotFound as exc:
            raise NetworkGone(network) from exc
        except APIError as exc:
            if exc.status_code == 409:
                existing = _existing(engine, spec.name)
                if existing is not None and existing["State"]["Status"] in ("exited", "dead") \
                        and (existing.get("Config", {}).get("Labels") or {}).get(L.OWNER) == settings.owner:
                    remove_container(engine, existing["Id"])  # a dead preview of this workspace holds the name
                    continue
                raise NameTaken(spec.name) from exc
            raise
        except EngineError as exc:
            if "storage-opt" in str(exc) or "storage opt" in str(exc).lower():
                engine.facts["disk_limit"] = False
                if required:
                    raise EngineError(engine.name, exc.status, "this engine cannot limit a preview's disk "
                                      "(overlay2 on XFS with project quotas is needed), and the fleet requires "
                                      "it: the host takes no previews until fixed") from exc
                disk_limit = False
                continue
            raise
    raise EngineError(engine.name, None, f"could not create {L.container_name(request.workspace)}")


def _existing(engine: Engine, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = engine.call(lambda api: api.inspect_container(name), "inspect")
    except NotFound:
        return None
    return result


def write_token(engine: Engine, container_id: str, token: Secret | None, run_as: str, ca: bytes | None = None) -> None:
    """Put the repository token where the template reads it (``REPO_TOKEN_FILE``, mode 0400, the preview user's),
    and the CA a private git server needs (``REPO_CA_FILE``, ``RuntimeSettings.repo_ca_file``), before the container
    starts. The token travels in the archive body only: never in the container's configuration, labels, logs or any
    error (a failure says which container, not what)."""
    uid, gid = (int(x) for x in run_as.split(":"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content, mode in ((REPO_TOKEN_FILE, token.reveal().encode() if token is not None else None, 0o400),
                                    (REPO_CA_FILE, ca, 0o444)):
            if content is None:
                continue
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, gid
            tar.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    try:
        engine.call(lambda api: api.put_archive(container_id, "/", data), "write the repository token")
    except APIError as exc:
        raise EngineError(engine.name, exc.status_code, f"writing the repository token into {container_id[:12]} "
                          "failed") from None


@functools.cache
def repo_ca(path: Path | None) -> bytes | None:
    """``RuntimeSettings.repo_ca_file``'s certificate, read once per process."""
    return path.read_bytes() if path is not None else None


def check_claim(view: HostView, record_id: str, network: str, settings: RuntimeSettings) -> ClaimResult:
    """Steps 2-3 on the host's listing made after the claim (pure): still placeable (a cordon made a moment ago is
    in this listing even if the ranking had not seen it), within capacity, and alone on its network."""
    if view.unplaceable is not None:
        return ClaimResult(Outcome.FULL, reason=f"{view.name}: {view.unplaceable}")
    cpu_capacity = view.cpu_capacity * settings.cpu_overcommit
    if view.memory_used > view.memory_capacity or view.cpus_used > cpu_capacity + 1e-9:
        return ClaimResult(Outcome.FULL, reason=(
            f"{view.name} is full ({view.memory_used / 2**20:.0f} of {view.memory_capacity / 2**20:.0f} MiB, "
            f"{view.cpus_used:g} of {cpu_capacity:g} nominal cores, this claim included)"))
    record = next((p for p in view.previews if p.id == record_id), None)
    if record is None:  # removed by someone else in between: treat as a conflict and look again
        return ClaimResult(Outcome.DUPLICATE, reason=f"claim on {view.name} disappeared")
    if any(p.claim == record.claim and p.id != record_id for p in view.previews):
        return ClaimResult(Outcome.DUPLICATE, reason=f"{network} on {view.name} was taken by another claim")
    return ClaimResult(Outcome.PLACED, record=record)


def start(engine: Engine, record: PreviewRecord) -> int:
    """Start a claimed container; return its published port on the host (its holder's: known already)."""
    engine.call(lambda api: api.start(record.id), "start container", slow=True)  # seconds on a busy engine
    if record.holder is not None and record.public_port is not None:
        return record.public_port
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


def env_of(inspected: dict[str, Any], keys: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
    """The values of the caller's variables ``keys`` from a container's configuration (None: one is missing)."""
    values = dict(item.partition("=")[::2] for item in (inspected.get("Config") or {}).get("Env") or [])
    if any(key not in values for key in keys):
        return None
    return tuple((key, values[key]) for key in keys)


# ---------------------------------------------------------------------------------------------------
# Hot start and reaping: the two sides of one race
# ---------------------------------------------------------------------------------------------------

def confirm(engine: Engine, record_id: str, workspace: str, now: datetime, *, stamp: bool) -> dict[str, Any] | None:
    """Hot start: check the container is still the workspace's running preview (one inspect), writing the activity
    stamp first when ``stamp``.

    A reaper renames a container to its tombstone *before* it re-reads the stamp, and it tombstones only a
    container whose stamp is ``persist_s`` old. With ``stamp``, either this check sees the tombstone (and the
    caller places a new preview), or the rename came after this stamp was written and the reaper's re-read sees
    fresh activity and gives the container back. Without it, the caller knows it stamped this container less than
    half a persistence window ago and that its flush writes this activity well before the other half ends.
    """
    try:
        if stamp:
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
    activity (a hot start's ``confirm`` stamps). False when it is gone, stopped or tombstoned."""
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
             seen_locally: datetime | None = None, force: bool = False, stop: bool = False) -> Reaped:
    """Stop and remove one preview, safely against other reapers and concurrent hot starts.

    1. Rename it to its tombstone: ``drape-reap-...`` (idle), or ``drape-stop-...`` (an explicit ``stop``: the intent
       is then in the name, and whoever finds it finishes the removal). Renames are atomic, so of several reapers
       exactly one succeeds; the others get an error and skip it.
    2. Unless ``force``: re-read the activity stamp. Fresh, or *unknown* (the read failed), it is renamed back and
       kept; if a new preview took the name meanwhile, this one is surplus.
    3. Stop and remove the container and its network (the slow-call budget: a big ``node_modules`` takes a while;
       a removal that outlasts even that is finished by the engine, and the tombstone says what it is).
    """
    tombstone = (L.stopping_name if stop else L.tombstone_name)(record.workspace, record.claim)
    if record.name != tombstone:
        try:
            engine.call(lambda api: api.rename(record.id, tombstone), "rename to tombstone")
        except NotFound:
            return Reaped.GONE
        except (APIError, EngineError):
            return Reaped.SKIPPED
    if not force and still_active(engine, record, now=now, persist_s=persist_s, seen_locally=seen_locally):
        try:
            engine.call(lambda api: api.rename(record.id, L.container_name(record.workspace)), "rename back")
            return Reaped.KEPT
        except (APIError, EngineError):
            pass  # a new preview has the name now: this one is surplus
    if record.state in ("running", "restarting", "paused"):
        try:
            engine.call(lambda api: api.stop(record.id, timeout=STOP_TIMEOUT_S), "stop container", slow=True)
        except NotFound:
            return Reaped.GONE
        except APIError:
            pass
    discard(engine, record)
    return Reaped.REMOVED


def still_active(engine: Engine, record: PreviewRecord, *, now: datetime, persist_s: float,
                 seen_locally: datetime | None = None) -> bool:
    """Activity within ``persist_s``: the stamp, the creation, this process's own pings; True when the stamp
    cannot be read (unknown is active)."""
    try:
        stamp = activity.read_stamp(engine, record.id)
    except RuntimeFailure:
        return True
    last = max(t for t in (record.created, stamp, seen_locally) if t is not None)
    return (now - last).total_seconds() < persist_s
