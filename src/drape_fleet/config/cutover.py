"""The cutover's settings (the fleet file's optional ``[cutover]`` section): who counts as an internal user, the
gate thresholds into phase 4, the smoke preview and the load test, how long stopped Fly machines are kept, how
often backend processes look for a new routing policy, and the encrypted link for a backend on Fly::

    [cutover]
    internal_users = ["u-ops-1", "u-ops-2"]
    users_file = "cutover-users.txt"       # the backend's user ids, one a line (checks --allow names)

    [cutover.gate]                         # entering phase 4: measured on Hetzner during phase 3
    p95_cold_s = 40
    p95_warm_s = 20
    max_error_percent = 1.0
    min_starts = 50

    [cutover.load_test]
    previews = 20
    framework = "nextjs"

Every default is the production value the migration plan states ("Prestazioni Preview": 20-40 s cold, 10-20 s
warm); the lab's fleet overrides the sizes. The routing policy itself (phase, allowlist, percentage) is state,
not configuration: it lives in the store the cutover tasks write (``drape_fleet.routing.store``).
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.config.base import FrozenModel, invalid

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]
"""The runtime's principal syntax (``drape.user`` label): what the backend passes as ``user``."""
FrameworkRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
WireGuardKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
"""A Curve25519 public key as ``wg pubkey`` prints it (32 bytes, base64)."""
_ENDPOINT = r"^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9a-f:]+\]:[0-9]{1,5}$"


class GateThresholds(FrozenModel):
    """What phase 3 must show on Hetzner before phase 4 moves everyone there."""

    p95_cold_s: Annotated[float, Field(gt=0, le=3600)] = 40.0
    p95_warm_s: Annotated[float, Field(gt=0, le=3600)] = 20.0
    max_error_percent: Annotated[float, Field(ge=0, le=100)] = 1.0
    """Failed Hetzner starts (placement failures that fell back to Fly included) per 100 attempts."""
    min_starts: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    """Hetzner starts phase 3 must have measured (a p95 of a handful of starts says little)."""
    require_load_test: bool = True
    load_test_max_age_h: Annotated[float, Field(gt=0, le=24 * 90)] = 72.0
    """A load test older than this no longer vouches for the fleet (hosts, images, code may have changed)."""


class SmokeSettings(FrozenModel):
    """Phase 2: one preview started and torn down on every host."""

    framework: FrameworkRef = "nextjs"
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0


class LoadTestSettings(FrozenModel):
    """Phase 3: this many previews started at once through the runtime, each to ready, then stopped."""

    framework: FrameworkRef = "nextjs"
    previews: Annotated[int, Field(ge=1, le=1000)] = 20
    rounds: Annotated[int, Field(ge=1, le=3)] = 3
    """1: cold starts only; 2: then warm starts (stopped, started again); 3: then hot starts (started while
    running)."""
    timeout_s: Annotated[float, Field(gt=0, le=7200)] = 600.0
    max_failures: Annotated[int, Field(ge=0)] = 0
    max_p95_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """The load test fails when the p95 of its cold starts is above this (the fleet under load is too slow)."""


class LinkSettings(FrozenModel):
    """The WireGuard link between the backend on Fly and the hosts' private network (docs/cutover.md).

    Every preview host is a WireGuard peer of the backend: it dials the backend's endpoint (so the hosts' firewall
    needs no inbound port: the answers are ``established``), and the backend reaches previews at the runtime's
    ``http://<private address>:<port>`` through the host's tunnel. Private keys never go here: each host makes
    its own on the host; the backend's lives in Fly's secrets."""

    interface: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,14}$")] = "wg-drape"
    subnet: IPv4Network = IPv4Network("10.250.0.0/24")
    """Tunnel addresses: the backend's ``backend_address`` and one per host (``host_addresses``)."""
    backend_public_key: WireGuardKey
    backend_endpoint: Annotated[str, StringConstraints(pattern=_ENDPOINT)]
    """Where the hosts dial the backend, ``host:port`` (its Fly dedicated IPv4 with a UDP service)."""
    backend_address: IPv4Interface
    """The backend's tunnel address; it must be one of ``network.backend_addresses`` (the hosts' firewall lets
    only backend addresses into previews)."""
    host_addresses: dict[str, IPv4Interface]
    """Each preview host's tunnel address, by host name."""
    keepalive_s: Annotated[int, Field(ge=5, le=300)] = 25
    userspace: bool = False
    """True where the kernel has no WireGuard module (the lab): ``wireguard-go`` drives the interface."""
    service_port: Annotated[int, Field(ge=1, le=65535)] = 443
    preview_ports: tuple[Annotated[int, Field(ge=1024, le=65535)], Annotated[int, Field(ge=1024, le=65535)]] = (
        32768, 60999)
    """The published-port range previews get (Linux's ephemeral range, which Docker uses by default)."""

    @model_validator(mode="after")
    def _addresses(self) -> Self:
        inside = [("backend_address", self.backend_address)] + [
            (f"host_addresses.{name}", address) for name, address in sorted(self.host_addresses.items())]
        seen: dict[str, str] = {}
        for field, address in inside:
            if address.ip not in self.subnet:
                raise invalid("outside_subnet", f"{address.ip} is not in the link's subnet {self.subnet}", at=field,
                              fix=f"pick an address inside {self.subnet}")
            if str(address.ip) in seen:
                raise invalid("duplicate_link_address", f"{address.ip} is also {seen[str(address.ip)]}", at=field,
                              fix="give every end of the link its own address")
            seen[str(address.ip)] = field
        if self.preview_ports[0] > self.preview_ports[1]:
            raise invalid("port_range", "the preview port range is reversed", at="preview_ports",
                          fix="write it low to high, e.g. [32768, 60999]")
        return self


class CutoverSettings(FrozenModel):
    internal_users: tuple[UserId, ...] = ()
    """Drape's own accounts: phase 2 sends exactly these to Hetzner."""
    users_file: str | None = None
    """A file of the backend's user ids (one a line, ``#`` comments), relative to the fleet file: what phase 3
    checks ``--allow`` against, so a typo never silently routes nobody."""
    verify: bool = True
    """Phase 1 runs `invoke verify` (tests/host over SSH) on the preview hosts. Turn it off only where the hosts are
    verified by other means on every change (the lab's CI runs the host suite in its own tests)."""
    required_frameworks: tuple[FrameworkRef, ...] | None = None
    """Templates phase 1 requires on every host (default: every framework of ``[runtime.frameworks]``)."""
    policy_poll_s: Annotated[float, Field(ge=0.2, le=60)] = 2.0
    """How often each backend process reads the routing policy from the hosts (a change reaches all of them
    within about this long)."""
    fly_grace_days: Annotated[float, Field(ge=0, le=90)] = 7.0
    """Stopped Fly machines are kept this long after phase 4 before they may be destroyed."""
    gate: GateThresholds = GateThresholds()
    smoke: SmokeSettings = SmokeSettings()
    load_test: LoadTestSettings = LoadTestSettings()
    link: LinkSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.internal_users)) != len(self.internal_users):
            raise invalid("duplicate_user", "a user is listed twice", at="internal_users", fix="list each user once")
        return self
