"""What the backend asks for, validated: ``make_request`` turns its arguments into a ``PreviewRequest`` or raises
``BadRequest`` naming the field at fault and how to fix it, before any host is touched. Pure (a repository's host
name is resolved later, and only when a preview is placed: ``addresses``).

What is refused, and why: unsafe ids (they become container names, labels and filters); sizes above the largest
preview or any host; environment variables that are the runtime's own or that steer the template's clone and
install, or too many or too large in all; repository addresses carrying credentials (they have their own field,
``repo_token``, which is never stored), ``file://`` and local paths, hosts written as private, loopback, link-local
or reserved addresses; tokens that are not printable ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from drape_fleet.config.models import Host
from drape_fleet.config.runtime import PreviewResources, RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.errors import BadRequest, RequestTooLarge, UnknownFramework

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
