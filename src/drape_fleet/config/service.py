"""The runtime service (``drape-runtime serve``, docs/service.md): the fleet file's optional ``[service]``
section, which every instance of the fleet enforces alike, and the two files an instance reads on its host::

    [service]                       # in the fleet file; leave it out and no host runs the service
    hosts = ["ax1", "ax2", "ax3"]   # default: every host
    port = 8420                     # where uvicorn listens on loopback, behind the ingress (https on 443)
    max_body_bytes = 65536
    limits = { rate_per_s = 100, burst = 200 }   # per caller and worker process; a token may have its own

``InstanceConfig`` is ``/etc/drape-runtime/service.toml`` (which fleet file, which instance, the Docker API
client certificate, the tokens file); ``TokenDigests`` is the tokens file: SHA-256 digests of the bearer tokens,
never the tokens (those stay in the ops secrets store, ``drape_fleet.service_deploy.tokens``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, get_args

from pydantic import Field, IPvAnyAddress, StringConstraints, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.config.errors import ConfigError, Problem

CallerName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
Scope = Literal["previews", "fleet", "metrics"]
"""``previews``: start, pre-warm, activity, stop, status, list. ``fleet``: hosts, cordon, drain, uncordon.
``metrics``: ``GET /metrics`` (Prometheus)."""
SCOPES: tuple[str, ...] = get_args(Scope)
Port = Annotated[int, Field(ge=1, le=65535)]


class CallerLimits(FrozenModel):
    """A token bucket per caller and worker process: ``rate_per_s`` sustained, ``burst`` at once."""

    rate_per_s: Annotated[float, Field(gt=0, le=100_000)] = 100.0
    burst: Annotated[int, Field(ge=1, le=1_000_000)] = 200


class ServiceSettings(FrozenModel):
    hosts: tuple[str, ...] | None = None
    """The hosts that run an instance (default: every host). Any instance answers for any workspace."""
    port: Annotated[int, Field(ge=1024, le=65535)] = 8420
    """uvicorn's port on 127.0.0.1; the ingress (Caddy) terminates TLS on ``ingress_port`` and proxies here."""
    ingress_port: Port = 443
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    limits: CallerLimits = CallerLimits()
    long_poll_max_s: Annotated[float, Field(ge=1, le=120)] = 30.0
    """The longest a phase long-poll (``GET .../wait``, or a start's ``wait_s``) is held open."""
    stream_max_s: Annotated[float, Field(ge=10, le=3600)] = 900.0
    """The longest one event stream (``GET .../events``) stays open; the client reconnects after."""
    threads: Annotated[int, Field(ge=4, le=1024)] = 64
    """Threads per process for the runtime's blocking calls (each request in flight holds one)."""
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    """Processes per instance (one event loop and one runtime each; state is the engines', so any process
    answers for any workspace). One process is bound by Python's GIL near a few hundred status calls/s."""

    def runs_on(self, host_names: Iterable[str]) -> tuple[str, ...]:
        names = tuple(host_names)
        return names if self.hosts is None else tuple(h for h in names if h in self.hosts)


Network = IPv4Network | IPv6Network


def service_hosts_problem(service: ServiceSettings, hosts: Iterable[Any],
                          backend_addresses: Iterable[Network]) -> PydanticCustomError | None:
    """An instance runs where the firewall lets it reach every engine and preview: its host's private address
    must be one of the fleet's backend addresses (``network.backend_addresses``)."""
    by_name = {h.name: h for h in hosts}
    for index, name in enumerate(service.hosts or ()):
        if name not in by_name:
            return invalid("unknown_service_host", f"{name!r} is not a host of this fleet",
                           at=f"service.hosts[{index}]", fix=f"use one of {', '.join(by_name)}")
    backends = tuple(backend_addresses)
    for name in service.runs_on(by_name):
        address = ip_address(by_name[name].private_address)
        if not any(address in network for network in backends):
            return invalid("service_host_not_backend", f"{name} runs the runtime service, but its private address "
                           f"{address} is not in network.backend_addresses, so the firewall keeps it from the "
                           "engines and previews", at="network.backend_addresses",
                           fix=f"add {address}/32 (or the private network) to network.backend_addresses")
    return None


# ---------------------------------------------------------------------------------------------------
# What an instance reads on its host
# ---------------------------------------------------------------------------------------------------

class EngineTls(FrozenModel):
    """The client certificate the instance presents to every host's Docker API (mutual TLS)."""

    ca: Path
    cert: Path
    key: Path


class InstanceConfig(FrozenModel):
    fleet_file: Path
    instance: CallerName
    """This instance's name in logs and metrics: its host's name."""
    listen: IPvAnyAddress = ip_address("127.0.0.1")
    port: Port | None = None
    """Default: the fleet's ``service.port``."""
    tokens_file: Path
    engine_tls: EngineTls | None = None
    """Default: the environment's PKI directory with the backend's client certificate (as the imported runtime)."""
    workspace_log: bool = True
    """Log each request's workspace id (not a secret; turn off if ids carry personal data)."""


class TokenEntry(FrozenModel):
    caller: CallerName
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    scopes: Annotated[tuple[Scope, ...], Field(min_length=1)] = ("previews",)
    limits: CallerLimits | None = None
    """This caller's own rate (default: the fleet's ``service.limits``)."""


class TokenDigests(FrozenModel):
    tokens: Annotated[tuple[TokenEntry, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[str] = set()
        for index, entry in enumerate(self.tokens):
            if entry.sha256 in seen:
                raise invalid("duplicate_token", "the same token is listed twice", at=f"tokens[{index}]",
                              fix="list each token once (one caller may have several tokens)")
            seen.add(entry.sha256)
        return self


def load_instance(path: str | Path) -> InstanceConfig:
    """Read an instance's service.toml; raise ``ConfigError`` naming the file, the field and the fix."""
    return _validate(InstanceConfig, _read_toml(Path(path)), str(path))


def load_token_digests(path: str | Path) -> TokenDigests:
    return _validate(TokenDigests, _read_toml(Path(path)), str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("(file)", "the file does not exist",
                                              "create it, or pass the path of an existing file")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [Problem("(file)", f"cannot read it ({exc.strerror})",
                                              "check the path and its permissions")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Problem("(syntax)", f"not valid TOML: {exc}", "correct the line it names")]) \
            from None


M = TypeVar("M", bound=FrozenModel)
_FIXES = {
    "string_pattern_mismatch": "use lowercase letters, digits and dashes (2-32), starting with a letter",
    "ip_any_address": "write an IPv4 or IPv6 address, e.g. 127.0.0.1",
    "int_parsing": "write a whole number without quotes",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
}


def _validate(model: type[M], data: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            ctx = error.get("ctx") or {}
            field = ".".join(str(part) for part in error["loc"]) or "(top level)"
            if error["type"] == "extra_forbidden":
                problems.append(Problem(field, "unknown field", "remove it or correct its spelling"))
            elif error["type"] == "missing":
                problems.append(Problem(field, "this required field is missing", "add it"))
            else:
                fix = ctx.get("fix") or _FIXES.get(error["type"], "correct the value")
                problems.append(Problem(field, f"{error['msg']} (got {error.get('input')!r})", str(fix)))
        raise ConfigError(source, problems) from None
