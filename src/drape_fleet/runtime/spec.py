"""Pure builders: what the runtime asks an engine for, built from a validated request (``request``) before anything
is sent. ``network_spec``, ``holder_spec`` and ``container_spec`` make Engine API bodies; the host configuration
goes through docker-py's ``HostConfig`` (pure: it validates option combinations for the API version and builds the
JSON), so an impossible combination fails here, not on a host.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network
from typing import Any

from docker.types import HostConfig, IPAMConfig, IPAMPool, Mount

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.request import (
    ENV_KEY_RE,
    PreviewRequest,
    Secret,
    check_env,
    check_repo,
    check_token,
    check_workspace,
    make_request,
    repo_host,
    safe_repr,
)

__all__ = ["ENV_KEY_RE", "PreviewRequest", "Secret", "check_env", "check_repo", "check_token", "check_workspace",
           "make_request", "repo_host", "safe_repr"]
"""The request's names stay importable from here, where they were."""

PNPM_STORE_MOUNT = "/pnpm-store"
PHASE_FILE = "/drape/phase"
"""Written by the template's entrypoint (``installing``, ``compiling``, ``failed: why``) as it goes."""
ACTIVITY_FILE = "/.drape-activity"
"""Written by the runtime (as root, through the archive endpoint): its modification time is the last activity."""
WORKSPACE_MOUNT = "/workspace"
"""Where a template keeps the project (``app/``) and its state (``.drape/``): the workspace's kept volume."""
REPO_CA_FILE = "/drape/git-ca.pem"
"""``RuntimeSettings.repo_ca_file``, handed over with the token: the template trusts it for the repository."""
REPO_TOKEN_FILE = "/drape/repo-token"  # noqa: S105 - a path, not a secret
# How long a stopping preview has before the engine kills it: Next.js writes its compile cache into the kept
# workspace as it exits (about a second; the template's supervisor gives it 8 s).
STOP_TIMEOUT_S = 10
"""Where a preview finds its repository token (mode 0400, its user's): written through the archive endpoint
before the container starts, named to the template by ``DRAPE_REPO_TOKEN_FILE``. Never in the container's
environment, labels or logs."""
SUBNET_PREFIX = 28


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


def network_spec(settings: RuntimeSettings, *, claim: str, subnet: IPv4Network, publish_address: str) -> NetworkSpec:
    """One bridge network per preview, made before it is known which workspace takes it (a spare, see
    ``lifecycle``): named and labelled by its claim only; the preview that takes it carries the same claim.

    Separate bridges are what keep workspaces apart: Docker drops forwarded traffic between two of its
    bridges (also after a published port's DNAT). ``enable_icc=false`` is set on the network itself (the
    daemon's ``icc`` key affects only the default bridge), so even containers that share a network
    cannot talk to each other unless a rule allows it. Published ports default to the host's private address.
    """
    if not L.CLAIM_RE.fullmatch(claim):
        raise ValueError(f"bad claim {claim!r}")
    return NetworkSpec(
        name=L.network_name(claim),
        bridge=L.bridge_name(claim),
        subnet=subnet,
        labels={L.OWNER: settings.owner, L.KIND: L.KIND_NETWORK, L.CLAIM: claim},
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
        # What a replacement elsewhere needs again (failover, drain); never a secret: the repository address
        # carries no credentials (refused), env values stay in the container's configuration, tokens nowhere.
        **({L.REPO: request.repo} if request.repo else {}),
        **({L.REF: request.ref} if request.ref else {}),
        **({L.ENV_KEYS: ",".join(k for k, _ in request.env)} if request.env else {}),
        **({L.REPO_AUTH: "token"} if request.repo_token is not None else {}),
    }


HOLDER_MEMORY = 8 * 1024 * 1024
"""Docker's smallest memory limit is 6 MiB; ``sleep`` needs far less."""
HOLDER_USER = "65534:65534"


def holder_spec(settings: RuntimeSettings, *, claim: str, network: str, publish_address: str, port: int, image: str,
                created: datetime) -> ContainerSpec:
    """A network holder: owns the namespace of a preview network and publishes the dev server's port on the host's
    private address; runs nothing but ``sleep``, as nobody, with every capability dropped and a read-only root. A
    preview that joins it (``container_spec(holder=...)``) finds its network ready, so a start does not wait for
    Docker to set one up (bridge endpoint, embedded DNS, port mapping: most of the cost of a start)."""
    if not L.CLAIM_RE.fullmatch(claim):
        raise ValueError(f"bad claim {claim!r}")
    exposed = f"{port}/tcp"
    host_config = HostConfig(
        version=settings.api_version, privileged=False, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
        network_mode=network, port_bindings={exposed: (publish_address, None)}, mem_limit=HOLDER_MEMORY,
        memswap_limit=HOLDER_MEMORY, pids_limit=16, read_only=True, restart_policy={"Name": "no"},
    )
    labels = {L.OWNER: settings.owner, L.KIND: L.KIND_HOLDER, L.CLAIM: claim, L.PORT: str(port),
              L.CREATED: L.format_time(created), L.MEMORY: str(HOLDER_MEMORY), L.CPUS: "0.01"}
    body: dict[str, Any] = {
        "Image": image, "User": HOLDER_USER, "Entrypoint": ["sleep", "2147483647"], "Cmd": [], "Env": [],
        "Labels": labels, "ExposedPorts": {exposed: {}}, "StopTimeout": 1,
        "HostConfig": {**host_config, "Privileged": False},
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }
    return ContainerSpec(name=L.holder_name(claim), body=body)


def workspace_mount(request: PreviewRequest, settings: RuntimeSettings) -> Mount:
    """The workspace's kept volume at ``/workspace``. The engine makes it on first use with these labels (and fills
    it from the image's ``/workspace``: empty, the preview user's), on its data root: the store's filesystem in the
    storage plan, so pnpm's imports from the store are reflink clones (docs/previews.md)."""
    labels = {L.OWNER: settings.owner, L.KIND: L.KIND_WORKSPACE, L.WORKSPACE: request.workspace,
              L.USER: request.user, L.PROJECT: request.project}
    return Mount(WORKSPACE_MOUNT, L.workspace_volume_name(request.workspace, request.user, request.project),
                 type="volume", labels=labels)


def container_spec(request: PreviewRequest, settings: RuntimeSettings, *, claim: str, created: datetime,
                   network: str, publish_address: str, disk_limit: bool, api_version: str | None = None,
                   holder: tuple[str, int] | None = None) -> ContainerSpec:
    """The ``POST /containers/create`` body for a preview.

    Isolation: not privileged; every capability dropped (``cap_add`` from settings, empty by default);
    ``no-new-privileges``; an unprivileged user; no Docker socket or other host path but the shared pnpm
    store, which is mounted read-only so no tenant can alter what another tenant's install reads.
    Resources: memory limit = reservation with no swap; CPU weight from the nominal cores and no quota (burst
    to the whole idle host) unless ``cpu_limit``; pids limit; ``/tmp`` as a bounded tmpfs; the writable
    layer's size (``disk_limit``: always where the fleet requires it). Logs follow the daemon's policy (the
    provisioned hosts rotate them: ``local`` driver with size and file limits).

    Network: ``holder`` (its id and published host port) joins a network holder's namespace, which publishes the
    port; without one, the preview is on ``network`` and publishes the port itself.
    """
    framework = settings.frameworks[request.framework]
    resources = request.resources
    port = f"{framework.port}/tcp"
    mounts = [workspace_mount(request, settings)] if framework.keep_workspace else None
    host_config = HostConfig(
        version=api_version or settings.api_version,
        privileged=False,
        cap_drop=["ALL"],
        cap_add=list(settings.cap_add) or None,
        security_opt=["no-new-privileges:true"],
        network_mode=f"container:{holder[0]}" if holder else network,
        port_bindings=None if holder else {port: (publish_address, None)},
        binds=[f"{settings.pnpm_store}:{PNPM_STORE_MOUNT}:ro"],
        mounts=mounts,
        init=True if framework.keep_workspace else None,  # docker-init reaps what a dev server orphans
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
        **({"DRAPE_REPO_TOKEN_FILE": REPO_TOKEN_FILE} if request.repo_token is not None else {}),
        **dict(request.env),
    }
    labels = preview_labels(request, settings, claim=claim, created=created)
    if holder:
        labels[L.PUBLIC_PORT] = str(holder[1])
    body: dict[str, Any] = {
        "Image": framework.image,
        "User": settings.run_as,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Labels": labels,
        "StopTimeout": STOP_TIMEOUT_S,
        # Explicit even where it is the engine's default: what a reviewer greps for, and what ``state``
        # checks on anything that claims to be ours.
        "HostConfig": {**host_config, "Privileged": False, "ReadonlyRootfs": False},
    }
    if not holder:  # a preview in a holder's namespace exposes nothing itself (the engine refuses it)
        body["ExposedPorts"] = {port: {}}
        body["NetworkingConfig"] = {"EndpointsConfig": {network: {}}}
    return ContainerSpec(name=L.container_name(request.workspace), body=body)
