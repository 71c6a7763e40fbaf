"""The fleet's address plan, checked across sections when a fleet file is loaded.

Each host's Docker engine hands out addresses from three ranges of its own: the engine's pool for networks
it makes (``provisioning.docker.address_pool``), its default bridge (``provisioning.docker.bridge_address``)
and the previews' networks (``runtime.subnet_pool``). Routes to those ranges point into the host's bridges, so
a range that overlaps another, or an address the fleet needs to reach (a host, the backend, an admin), makes
traffic vanish or network creation fail at random, on some hosts and not others. Caught here, every command
refuses the fleet file before anything is contacted. Pure: the sections go in, the first problem comes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Protocol

from pydantic_core import PydanticCustomError

from drape_fleet.config.base import invalid
from drape_fleet.config.provisioning import DockerSettings

AnyNetwork = IPv4Network | IPv6Network


class _Addressed(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def public_address(self) -> IPv4Address | IPv6Address: ...
    @property
    def private_address(self) -> IPv4Address | IPv6Address: ...


@dataclass(frozen=True)
class _Range:
    field: str
    network: AnyNetwork
    what: str


def engine_ranges(docker: DockerSettings, subnet_pool: IPv4Network) -> list[_Range]:
    """The ranges a host's engine allocates from, named by the field that sets each."""
    return [
        _Range("runtime.subnet_pool", subnet_pool, "the previews' networks"),
        _Range("provisioning.docker.address_pool", docker.address_pool, "the engine's address pool"),
        _Range("provisioning.docker.bridge_address", docker.bridge_address.network, "the engine's default bridge"),
    ]


def used_ranges(hosts: Sequence[_Addressed], backend_addresses: Iterable[AnyNetwork],
                admin_allowlist: Iterable[AnyNetwork]) -> list[_Range]:
    """Addresses the fleet must keep reaching: its hosts, the backend, the admins."""
    used: list[_Range] = []
    for index, host in enumerate(hosts):
        for field in ("public_address", "private_address"):
            address = getattr(host, field)
            used.append(_Range(f"hosts[{index}].{field}", ip_network(address), f"{host.name}'s {field}"))
    used += [_Range("network.backend_addresses", ip_network(n), "network.backend_addresses")
             for n in backend_addresses]
    used += [_Range("network.admin_allowlist", ip_network(n), "network.admin_allowlist") for n in admin_allowlist]
    return used


def address_plan_problem(docker: DockerSettings, subnet_pool: IPv4Network, hosts: Sequence[_Addressed],
                         backend_addresses: Iterable[AnyNetwork],
                         admin_allowlist: Iterable[AnyNetwork]) -> PydanticCustomError | None:
    """The first overlap between the engines' ranges, or with an address the fleet uses; None when clear."""
    inner = engine_ranges(docker, subnet_pool)
    for index, wanted in enumerate(inner):
        for other in inner[index + 1:]:
            if wanted.network.overlaps(other.network):
                return invalid("ranges_overlap", f"{wanted.network} ({wanted.what}) overlaps {other.field} "
                               f"{other.network} ({other.what})", at=wanted.field,
                               fix="give each its own range inside 10.0.0.0/8, e.g. previews 10.240.0.0/16, "
                                   "engine pool 10.200.0.0/16, default bridge 10.199.255.1/24")
    for wanted in inner:
        for used in used_ranges(hosts, backend_addresses, admin_allowlist):
            if used.network.version == wanted.network.version and wanted.network.overlaps(used.network):
                return invalid("range_hits_fleet", f"{wanted.network} ({wanted.what}) overlaps {used.what} "
                               f"({used.network}): that traffic would be routed into the host's bridges",
                               at=wanted.field, fix=f"move {wanted.field} to a range the fleet does not use")
    return None
