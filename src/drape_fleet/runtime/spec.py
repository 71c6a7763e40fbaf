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
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
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
REPO_TOKEN_FILE = "/drape/repo-token"  # noqa: S105 - a path, not a secret
"""Where a preview finds its repository token (mode 0400, its user's): written through the archive endpoint
before the container starts, named to the template by ``DRAPE_REPO_TOKEN_FILE``. Never in the container's
environment, labels or logs."""
SUBNET_PREFIX = 28

ENV_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
RESERVED_ENV = frozenset({"PATH", "HOME", "HOSTNAME", "PORT", "HOST", "USER", "SHELL", "PWD", "TMPDIR",
                          "NODE_OPTIONS", "NODE_PATH"})
"""What the runtime and the template set or rely on (the dev server's address, the user's home, how Node
loads): a caller's env may not replace them."""
RESERVED_ENV_PREFIXES = ("DRAPE_", "LD_", "GIT_", "NPM_CONFIG_", "PNPM_")
"""The runtime's own variables, the dynamic loader's, and those that steer the template's clone and install
(``GIT_TRACE`` would print the repository token into the logs; ``NPM_CONFIG_*`` and ``PNPM_*`` move the store)."""
MAX_ENV_VARS = 100
MAX_ENV_BYTES = 32 * 1024
"""All names and values together: the environment is part of every inspect and listing of the container."""
MAX_ENV_VALUE = 4096
MAX_TOKEN_CHARS = 1024
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_REPO_HTTPS_RE = re.compile(r"^https://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/[A-Za-z0-9._~/+-]+$")
_REPO_SCP_RE = re.compile(r"^git@(?P<host>[A-Za-z0-9.-]+):[A-Za-z0-9._~/+-]+$")
_REF_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


class Secret:
    """A value that must never be printed: its ``repr`` and ``str`` hide it (a request logged by mistake shows
    ``Secret(***)``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


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
    repo_token: Secret | None = field(default=None, repr=False)
    """Kept in this process's memory only (for a re-placement); a replacement made elsewhere asks the backend's
    ``project_source`` for a fresh one."""

    @property
    def repo_host(self) -> str | None:
        return repo_host(self.repo) if self.repo else None


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
    repo_token: str | Secret | None = None,
) -> PreviewRequest:
    """Validate the backend's arguments; raise ``BadRequest`` (or a subclass) naming the field at fault. Pure: a
    repository's host name is resolved later, and only when a preview is placed (``addresses``)."""
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
    if settings.disk_limit == "required" and resources.disk_gib is None:
        raise BadRequest("resources.disk_gib", "every preview needs a disk limit in this fleet (runtime.disk_limit "
                         "is 'required'): give disk_gib")
    if repo is not None:
        check_repo(repo, settings.private_repo_networks)
    if ref is not None and (not isinstance(ref, str) or not _REF_RE.fullmatch(ref) or ".." in ref
                            or ref.startswith(("-", "/"))):
        raise BadRequest("ref", f"{ref!r} is not a safe branch, tag or commit name")
    token = check_token(repo_token, repo)
    return PreviewRequest(workspace=workspace, user=user, framework=framework, project=project,
                          resources=resources, repo=repo, ref=ref, env=check_env(env), repo_token=token)


def check_workspace(workspace: object) -> str:
    """A workspace id as ``stop``, ``status`` and ``activity`` take it: the same rule as ``start``'s, so an
    arbitrary string never becomes a key in this process's memory."""
    _identifier("workspace", workspace, L.WORKSPACE_RE, "letters, digits, '-' and '_' (1-63, not starting "
                "with '-' or '_')")
    assert isinstance(workspace, str)
    return workspace


def check_repo(repo: object, private_allowed: Sequence[IPv4Network | IPv6Network] = ()) -> None:
    """A repository address the template may clone: ``https://host/path`` or ``git@host:path``, on a public host
    (or in ``private_allowed``). Credentials inside the address, ``file://``, local paths and hosts written as
    private, loopback or link-local addresses are refused here; host names are resolved before placement
    (``addresses``)."""
    if not isinstance(repo, str) or not repo or len(repo) > 2048:
        raise BadRequest("repo", "must be a repository address of at most 2048 characters")
    lowered = repo.lower()
    if lowered.startswith("file:") or repo.startswith(("/", ".", "~")) or "\\" in repo:
        raise BadRequest("repo", f"{safe_repr(repo)} is a local path or file:// address: only https://host/path "
                         "or git@host:path repositories can be cloned")
    if lowered.startswith("https://") and "@" in repo.split("/", 3)[2]:
        raise BadRequest("repo", "the address carries credentials (user:token@host): pass the address without "
                         "them and the token as repo_token, which is never stored with the preview")
    if not (_REPO_HTTPS_RE.fullmatch(repo) or _REPO_SCP_RE.fullmatch(repo)):
        raise BadRequest("repo", f"{safe_repr(repo)} is not an https://host/path or git@host:path repository "
                         "address")
    host = repo_host(repo)
    literal = _ip_literal(host)
    if literal is not None and not literal.is_global and not any(literal in n for n in private_allowed):
        raise BadRequest("repo", f"{host} is a private, loopback, link-local or reserved address: repositories "
                         "must be on a public host")
    if host.lower() == "localhost" or host.lower().endswith((".localhost", ".local", ".internal")):
        raise BadRequest("repo", f"{host} is not a public host name")


def repo_host(repo: str) -> str:
    match = _REPO_HTTPS_RE.fullmatch(repo) or _REPO_SCP_RE.fullmatch(repo)
    if match is None:
        raise BadRequest("repo", f"{safe_repr(repo)} is not a repository address")
    return match.group("host").strip("[]")


def _ip_literal(host: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def check_token(token: str | Secret | None, repo: str | None) -> Secret | None:
    if token is None:
        return None
    value = token.reveal() if isinstance(token, Secret) else token
    if repo is None:
        raise BadRequest("repo_token", "a repository token needs a repo")
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value) or len(value) > MAX_TOKEN_CHARS:
        raise BadRequest("repo_token", f"must be printable ASCII without spaces, at most {MAX_TOKEN_CHARS} "
                         "characters (the token is not shown here)")
    return Secret(value)


def check_env(env: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if env is not None and not isinstance(env, Mapping):
        raise BadRequest("env", "must be a mapping of names to values")
    pairs: list[tuple[str, str]] = []
    total = 0
    for key, value in sorted((env or {}).items(), key=lambda kv: str(kv[0])):
        if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
            raise BadRequest("env", f"variable name {safe_repr(key)} is not allowed (A-Z, 0-9 and _, starting with "
                             "a letter, at most 64)")
        if key in RESERVED_ENV or key.startswith(RESERVED_ENV_PREFIXES):
            raise BadRequest("env", f"{key} is the runtime's own: the preview's {', '.join(sorted(RESERVED_ENV))} "
                             f"and {', '.join(p + '*' for p in RESERVED_ENV_PREFIXES)} cannot be set")
        if not isinstance(value, str) or "\0" in value or len(value) > MAX_ENV_VALUE:
            raise BadRequest("env", f"the value of {key} must be a string of at most {MAX_ENV_VALUE} characters "
                             "without NUL")
        total += len(key.encode()) + len(value.encode()) + 2
        pairs.append((key, value))
    if len(pairs) > MAX_ENV_VARS or total > MAX_ENV_BYTES:
        raise BadRequest("env", f"{len(pairs)} variables, {total} bytes: at most {MAX_ENV_VARS} variables and "
                         f"{MAX_ENV_BYTES} bytes in all")
    return tuple(pairs)


def safe_repr(value: object, limit: int = 80) -> str:
    """A caller's value quoted for an error message, cut short (an error must not echo a megabyte back)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _identifier(name: str, value: object, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(name, f"{safe_repr(value)} is not a safe {name} id: use {allowed}")


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
    host_config = HostConfig(
        version=api_version or settings.api_version,
        privileged=False,
        cap_drop=["ALL"],
        cap_add=list(settings.cap_add) or None,
        security_opt=["no-new-privileges:true"],
        network_mode=f"container:{holder[0]}" if holder else network,
        port_bindings=None if holder else {port: (publish_address, None)},
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
        "StopTimeout": 5,
        # Explicit even where it is the engine's default: what a reviewer greps for, and what ``state``
        # checks on anything that claims to be ours.
        "HostConfig": {**host_config, "Privileged": False, "ReadonlyRootfs": False},
    }
    if not holder:  # a preview in a holder's namespace exposes nothing itself (the engine refuses it)
        body["ExposedPorts"] = {port: {}}
        body["NetworkingConfig"] = {"EndpointsConfig": {network: {}}}
    return ContainerSpec(name=L.container_name(request.workspace), body=body)
