"""Pure builders: what the runtime asks an engine for. Validation happens here, before anything is sent.

``make_request`` turns the backend's arguments into a validated ``PreviewRequest`` (or raises ``BadRequest``);
``network_spec`` and ``container_spec`` turn a request into Engine API bodies. The host configuration goes
through docker-py's ``HostConfig`` (pure: it validates option combinations for the API version and builds
the JSON), so an impossible combination fails here, not on a host.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network
from typing import Any

from docker.types import HostConfig, IPAMConfig, IPAMPool

from drape_fleet.config.models import Host
from drape_fleet.config.runtime import PreviewResources, RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.errors import BadRequest, RequestTooLarge, UnknownFramework

PNPM_STORE_MOUNT = "/pnpm-store"
PHASE_FILE = "/drape/phase"
"""Written by the template's entrypoint (``installing``, ``compiling``, ``failed: why``) as it goes."""
ACTIVITY_FILE = "/.drape-activity"
"""Written by the runtime (as root, through the archive endpoint): its modification time is the last activity."""
SUBNET_PREFIX = 28

_ENV_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_RESERVED_ENV = frozenset({"PATH", "HOME", "HOSTNAME", "PORT", "HOST", "USER", "SHELL", "LD_PRELOAD",
                           "LD_LIBRARY_PATH", "NODE_OPTIONS"})
_REPO_RE = re.compile(r"^(https://[A-Za-z0-9.-]+(:\d+)?/[A-Za-z0-9._~/+-]+|git@[A-Za-z0-9.-]+:[A-Za-z0-9._~/+-]+)$")
_REF_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


@dataclass(frozen=True)
class PreviewRequest:
    """A validated request for one workspace's preview."""

    workspace: str
    user: str
    framework: str
    project: str
    resources: PreviewResources
    repo: str | None = None
    ref: str | None = None
    env: tuple[tuple[str, str], ...] = ()


def make_request(
    settings: RuntimeSettings,
    hosts: Sequence[Host],
    *,
    workspace: str,
    user: str,
    framework: str,
    project: str | None = None,
    resources: PreviewResources | None = None,
    repo: str | None = None,
    ref: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PreviewRequest:
    """Validate the backend's arguments; raise ``BadRequest`` (or a subclass) naming the field at fault."""
    _identifier("workspace", workspace, L.WORKSPACE_RE, "letters, digits, '-' and '_' (1-63, not starting "
                "with '-' or '_')")
    _identifier("user", user, L.PRINCIPAL_RE, "letters, digits and . _ @ + - (1-128)")
    project = workspace if project is None else project
    _identifier("project", project, L.PRINCIPAL_RE, "letters, digits and . _ @ + - (1-128)")
    if not isinstance(framework, str) or framework not in settings.frameworks:
        known = ", ".join(sorted(settings.frameworks))
        raise UnknownFramework("framework", f"unknown framework {framework!r} (this fleet has {known})")
    resources = settings.default_resources(framework) if resources is None else resources
    _fits_limits(resources, settings, hosts)
    if repo is not None and not _REPO_RE.fullmatch(repo):
        raise BadRequest("repo", f"{repo!r} is not an https:// or git@host:path repository address")
    if ref is not None and (not _REF_RE.fullmatch(ref) or ".." in ref or ref.startswith(("-", "/"))):
        raise BadRequest("ref", f"{ref!r} is not a safe branch, tag or commit name")
    pairs: list[tuple[str, str]] = []
    for key, value in sorted((env or {}).items()):
        if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key) or key in _RESERVED_ENV \
                or key.startswith("DRAPE_"):
            raise BadRequest("env", f"variable name {key!r} is not allowed (A-Z, 0-9, _; not DRAPE_* or "
                             f"{', '.join(sorted(_RESERVED_ENV))})")
        if not isinstance(value, str) or "\0" in value or len(value) > 4096:
            raise BadRequest("env", f"the value of {key} must be a string of at most 4096 characters without NUL")
        pairs.append((key, value))
    return PreviewRequest(workspace=workspace, user=user, framework=framework, project=project,
                          resources=resources, repo=repo, ref=ref, env=tuple(pairs))


def _identifier(name: str, value: object, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(name, f"{value!r} is not a safe {name} id: use {allowed}")


def _fits_limits(resources: PreviewResources, settings: RuntimeSettings, hosts: Sequence[Host]) -> None:
    largest = settings.largest_preview
    for name in ("cpus", "memory_mib", "pids_limit", "tmp_mib"):
        asked, allowed = getattr(resources, name), getattr(largest, name)
        if asked > allowed:
            raise RequestTooLarge(f"resources.{name}", f"{asked} is above the largest preview allowed ({allowed})")
    preview_hosts = [h for h in hosts if "preview" in h.roles]
    biggest_memory = max((h.capacity.memory_gib * 1024 for h in preview_hosts), default=0)
    biggest_cpus = max((h.capacity.cpus for h in preview_hosts), default=0)
    if resources.memory_mib > biggest_memory:
        raise RequestTooLarge("resources.memory_mib", f"{resources.memory_mib} MiB is more than any host offers "
                              f"({biggest_memory} MiB)")
    if resources.cpus > biggest_cpus or (resources.cpu_limit or 0) > biggest_cpus:
        raise RequestTooLarge("resources.cpus", f"{resources.cpus} cores is more than any host has ({biggest_cpus})")


# ---------------------------------------------------------------------------------------------------
# Engine API bodies
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkSpec:
    name: str
    bridge: str
    subnet: IPv4Network
    labels: Mapping[str, str]
    options: Mapping[str, str]

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_network``."""
        return {
            "name": self.name,
            "driver": "bridge",
            "options": dict(self.options),
            "ipam": IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet), gateway=self.gateway)]),
            "check_duplicate": True,
            "internal": False,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    body: dict[str, Any] = field(hash=False)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body["Labels"])


def pick_subnet(pool: IPv4Network, rng: random.Random) -> IPv4Network:
    """A random /28 from ``pool``; the engine refuses one that overlaps an existing network, and the caller
    tries another (so several processes never need to agree on an allocation table)."""
    index = rng.randrange(2 ** (SUBNET_PREFIX - pool.prefixlen))
    return IPv4Network((int(pool.network_address) + index * 2 ** (32 - SUBNET_PREFIX), SUBNET_PREFIX))


def network_spec(request: PreviewRequest, settings: RuntimeSettings, *, claim: str, subnet: IPv4Network,
                 publish_address: str) -> NetworkSpec:
    """One bridge network per workspace preview.

    Separate bridges are what keep workspaces apart: Docker drops forwarded traffic between two of its
    bridges (also after a published port's DNAT). ``enable_icc=false`` is set on the network itself (the
    daemon's ``icc`` key affects only the default bridge), so even containers that share a workspace network
    cannot talk to each other unless a rule allows it. Published ports default to the host's private address.
    """
    if not L.CLAIM_RE.fullmatch(claim):
        raise ValueError(f"bad claim {claim!r}")
    return NetworkSpec(
        name=L.network_name(request.workspace, claim),
        bridge=L.bridge_name(claim),
        subnet=subnet,
        labels={L.OWNER: settings.owner, L.KIND: L.KIND_NETWORK, L.WORKSPACE: request.workspace, L.CLAIM: claim},
        options={
            "com.docker.network.bridge.name": L.bridge_name(claim),
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": publish_address,
        },
    )


def preview_labels(request: PreviewRequest, settings: RuntimeSettings, *, claim: str,
                   created: datetime) -> dict[str, str]:
    framework = settings.frameworks[request.framework]
    return {
        L.OWNER: settings.owner,
        L.KIND: L.KIND_PREVIEW,
        L.WORKSPACE: request.workspace,
        L.USER: request.user,
        L.PROJECT: request.project,
        L.FRAMEWORK: request.framework,
        L.CREATED: L.format_time(created),
        L.MEMORY: str(request.resources.memory_bytes),
        L.CPUS: f"{request.resources.cpus:g}",
        L.PORT: str(framework.port),
        L.CLAIM: claim,
    }


def container_spec(request: PreviewRequest, settings: RuntimeSettings, *, claim: str, created: datetime,
                   network: str, publish_address: str, disk_limit: bool, api_version: str | None = None
                   ) -> ContainerSpec:
    """The ``POST /containers/create`` body for a preview.

    Isolation: not privileged; every capability dropped (``cap_add`` from settings, empty by default);
    ``no-new-privileges``; an unprivileged user; no Docker socket or other host path but the shared pnpm
    store, which is mounted read-only so no tenant can alter what another tenant's install reads.
    Resources: memory limit = reservation with no swap; CPU weight from the nominal cores and no quota (burst
    to the whole idle host) unless ``cpu_limit``; pids limit; ``/tmp`` as a bounded tmpfs; the writable
    layer's size where the engine supports it (``disk_limit``). Logs follow the daemon's policy (the
    provisioned hosts rotate them: ``local`` driver with size and file limits).
    """
    framework = settings.frameworks[request.framework]
    resources = request.resources
    port = f"{framework.port}/tcp"
    host_config = HostConfig(
        version=api_version or settings.api_version,
        privileged=False,
        cap_drop=["ALL"],
        cap_add=list(settings.cap_add) or None,
        security_opt=["no-new-privileges:true"],
        network_mode=network,
        port_bindings={port: (publish_address, None)},
        binds=[f"{settings.pnpm_store}:{PNPM_STORE_MOUNT}:ro"],
        mem_limit=resources.memory_bytes,
        memswap_limit=resources.memory_bytes,
        cpu_shares=max(2, int(resources.cpus * 1024)),
        nano_cpus=int(resources.cpu_limit * 1e9) if resources.cpu_limit is not None else None,
        pids_limit=resources.pids_limit,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={resources.tmp_mib}m"},  # noqa: S108 - the container's own tmpfs
        storage_opt={"size": f"{resources.disk_gib}G"} if disk_limit and resources.disk_gib else None,
        restart_policy={"Name": "no"},
    )
    env = {
        "DRAPE_WORKSPACE": request.workspace,
        "DRAPE_PROJECT": request.project,
        "DRAPE_FRAMEWORK": request.framework,
        "DRAPE_PHASE_FILE": PHASE_FILE,
        "DRAPE_PNPM_STORE": PNPM_STORE_MOUNT,
        "PORT": str(framework.port),
        "HOST": "0.0.0.0",  # noqa: S104 - the dev server must listen on the container's interface
        **({"DRAPE_REPO": request.repo} if request.repo else {}),
        **({"DRAPE_REF": request.ref} if request.ref else {}),
        **dict(request.env),
    }
    body: dict[str, Any] = {
        "Image": framework.image,
        "User": settings.run_as,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Labels": preview_labels(request, settings, claim=claim, created=created),
        "ExposedPorts": {port: {}},
        "StopTimeout": 5,
        # Explicit even where it is the engine's default: what a reviewer greps for, and what ``state``
        # checks on anything that claims to be ours.
        "HostConfig": {**host_config, "Privileged": False, "ReadonlyRootfs": False},
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }
    return ContainerSpec(name=L.container_name(request.workspace), body=body)
