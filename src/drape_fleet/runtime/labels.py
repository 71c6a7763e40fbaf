"""The labels that mark what the runtime owns, and the names it gives things. Pure; no I/O.

Labels are the system of record: a backend that restarts rebuilds its whole view from them. They are
immutable after creation (Docker cannot change them), so they hold only what never changes for the life of
a container: who it is for, what it runs, how much it reserves and when it was made. What does change
(last activity) lives elsewhere: see ``activity``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

OWNER = "drape.owner"
KIND = "drape.kind"
WORKSPACE = "drape.workspace"
USER = "drape.user"
PROJECT = "drape.project"
FRAMEWORK = "drape.framework"
CREATED = "drape.created"
MEMORY = "drape.memory"
"""Reserved memory in bytes (equal to the container's memory limit)."""
CPUS = "drape.cpus"
"""Nominal cores (the container's CPU weight / 1024)."""
PORT = "drape.port"
"""The dev server's port inside the container."""
CLAIM = "drape.claim"
"""A random nonce per network: ties a container to the network it was placed on (``drape-net-<claim>``)."""
REASON = "drape.reason"
REPO = "drape.repo"
"""The project's repository address (never with credentials: those are refused, see ``spec``) and ``REF``:
what a replacement on another host clones again (failover, drain)."""
REF = "drape.ref"
ENV_KEYS = "drape.env-keys"
"""The names (never the values) of the caller's environment variables, comma-separated: a replacement reads
their values back from the original container's configuration, where they already are."""
PUBLIC_PORT = "drape.public-port"
"""On a preview that joined a network holder: the host port its holder publishes (fixed for the holder's life)."""
REPO_AUTH = "drape.repo-auth"
"""``token`` when the preview was started with a repository token (the token itself is never stored: a
replacement needs it issued again)."""

KIND_PREVIEW = "preview"
KIND_NETWORK = "preview-network"
KIND_CORDON = "cordon"
KIND_STOP = "stop"
KIND_HOLDER = "netns"
"""A network holder: a parked container that owns a preview network's namespace and published port (see
``lifecycle``); a preview joins it (``container:<id>``) instead of setting its network up while the user waits."""

KIND_WORKSPACE = "workspace"
"""A workspace's kept directory: a volume ``drape-ws-<workspace>-<digest>`` mounted at ``/workspace`` by each of its
previews (the clone, ``node_modules``, framework caches), left when the container goes so the next start installs
nothing. Labelled with its workspace, user and project; another user or project of the workspace gets another."""

PREVIEW_LABELS = (OWNER, KIND, WORKSPACE, USER, PROJECT, FRAMEWORK, CREATED, MEMORY, CPUS, PORT, CLAIM)

# Identifiers that become container/network names and label values. Conservative on purpose: letters,
# digits, '-' and '_' only, so a workspace id can never smuggle a path, a flag or a filter separator.
WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
CLAIM_RE = re.compile(r"^[0-9a-f]{12}$")

CONTAINER_PREFIX = "drape-pv-"
TOMBSTONE_PREFIX = "drape-reap-"
"""A container being reaped is first renamed to ``drape-reap-<workspace>-<claim>``: the rename is atomic (names
are unique per engine), so exactly one reaper wins, and a concurrent hot start sees the new name and backs off.
A reap tombstone left behind (its reaper died) is removed only after its activity is checked again."""
STOPPING_PREFIX = "drape-stop-"
"""A container being stopped (an explicit ``stop``) is renamed to ``drape-stop-<workspace>-<claim>`` first: the
intent is in the name, so a stop that dies half-way is finished by any reaper, activity or not."""
NETWORK_PREFIX = "drape-net-"
BRIDGE_PREFIX = "drp"
"""Linux bridge names of preview networks: ``drp`` + the claim (15 characters, the kernel's limit), so host
firewall rules can match every preview bridge with ``drp+``."""
HOLDER_PREFIX = "drape-nh-"
CORDON_VOLUME = "drape-cordon"
STOP_MARKER_PREFIX = "drape-stop-"
"""Volumes ``drape-stop-<workspace>-<nonce>``: a stop that could not reach every host, kept on the hosts that
answered until the others have been cleaned (see ``stops``)."""


WORKSPACE_VOLUME_PREFIX = "drape-ws-"


def workspace_volume_name(workspace: str, user: str, project: str) -> str:
    """The kept directory of ``workspace`` for this user and project (a digest keeps names short and safe)."""
    digest = hashlib.sha256(f"{user}\0{project}".encode()).hexdigest()[:12]
    return f"{WORKSPACE_VOLUME_PREFIX}{workspace}-{digest}"


def container_name(workspace: str) -> str:
    return f"{CONTAINER_PREFIX}{workspace}"


def tombstone_name(workspace: str, claim: str) -> str:
    return f"{TOMBSTONE_PREFIX}{workspace}-{claim}"


def stopping_name(workspace: str, claim: str) -> str:
    return f"{STOPPING_PREFIX}{workspace}-{claim}"


def network_name(claim: str) -> str:
    """A preview network is made before it is known which workspace takes it (spares): named by its claim."""
    return f"{NETWORK_PREFIX}{claim}"


def legacy_network_name(workspace: str, claim: str) -> str:
    """How networks were named before spares (one made per start): still recognised, so previews made by an
    older backend are not taken for foreign during an upgrade."""
    return f"{NETWORK_PREFIX}{workspace}-{claim}"


def holder_name(claim: str) -> str:
    return f"{HOLDER_PREFIX}{claim}"


def stop_marker_name(workspace: str, nonce: str) -> str:
    return f"{STOP_MARKER_PREFIX}{workspace}-{nonce}"


def bridge_name(claim: str) -> str:
    return f"{BRIDGE_PREFIX}{claim}"


def format_time(moment: datetime) -> str:
    """UTC, millisecond precision, ISO 8601 with a Z: readable by ops in ``docker ps`` and sortable."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Inverse of ``format_time``; raises ``ValueError`` on anything else."""
    if not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    return datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def owned_filter(owner: str, kind: str | None = None) -> dict[str, list[str]]:
    """A Docker list filter for objects this runtime (``owner``) made, optionally of one kind."""
    wanted = [f"{OWNER}={owner}"]
    if kind is not None:
        wanted.append(f"{KIND}={kind}")
    return {"label": wanted}
