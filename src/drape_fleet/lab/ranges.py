"""Address ranges: the lab's own networks, and what else on this machine already uses a range."""

from __future__ import annotations

import json
from ipaddress import IPv4Network, ip_network
from typing import Any

import docker
from docker.errors import NotFound

from drape_fleet import shell
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LABEL, LabSettings

FREE_EXAMPLES = {"public": "10.213.10.0/24", "private": "10.213.20.0/24"}


def own_network(client: docker.DockerClient, settings: LabSettings, name: str) -> Any | None:
    """The lab's network called ``name``, or None; a network of that name the lab did not make is refused."""
    try:
        network = client.networks.get(name)
    except NotFound:
        return None
    if (network.attrs.get("Labels") or {}).get(LABEL) != settings.prefix:
        raise LabError(f"a Docker network named {name!r} exists but the lab did not make it; "
                       f"remove it or choose another lab prefix")
    return network


def network_subnet(network: Any) -> IPv4Network | None:
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    return IPv4Network(configs[0]["Subnet"]) if configs else None


def current_subnets(client: docker.DockerClient, settings: LabSettings) -> dict[str, IPv4Network]:
    """The subnets of the lab networks that exist now: the running lab's own record of its ranges."""
    found: dict[str, IPv4Network] = {}
    for which, name in (("public", settings.public_network), ("private", settings.private_network)):
        network = own_network(client, settings, name)
        subnet = network_subnet(network) if network is not None else None
        if subnet is not None:
            found[which] = subnet
    return found


def check_ranges(client: docker.DockerClient, settings: LabSettings) -> None:
    """Refuse ranges that differ from the running lab's, or that something else on this machine uses."""
    current = current_subnets(client, settings)
    wanted_ranges = (("public", settings.public_subnet), ("private", settings.private_subnet))
    for which, wanted in wanted_ranges:
        if which in current and current[which] != wanted:
            raise LabError(f"the lab's {which} network is {current[which]}, not {wanted}: run "
                           f"`invoke lab.down` first to change it, or leave --{which}-subnet out")
    ours = {str(s) for s in current.values()}
    for which, wanted in wanted_ranges:
        if str(wanted) in ours:
            continue
        for used, owner in used_ranges(client, settings):
            if wanted.overlaps(used):
                raise LabError(f"the address range {wanted} (--{which}-subnet) is already taken: {used} is used "
                               f"by {owner}. Pick a free private range, e.g. --{which}-subnet {FREE_EXAMPLES[which]}")


def used_ranges(client: docker.DockerClient, settings: LabSettings) -> list[tuple[IPv4Network, str]]:
    """Address ranges in use on this machine (Docker networks, interface addresses, routes), this lab's
    own networks and their bridges excepted."""
    found: list[tuple[IPv4Network, str]] = []
    own_bridges: set[str] = set()
    for network in client.networks.list():
        if (network.attrs.get("Labels") or {}).get(LABEL) == settings.prefix:
            own_bridges.add(f"br-{(network.id or '')[:12]}")
            continue
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = config.get("Subnet", "")
            if subnet and ":" not in subnet:
                found.append((IPv4Network(subnet, strict=False), f"Docker network {network.name!r}"))
    addrs = shell.run(["ip", "-j", "-4", "addr"], check=False)
    if addrs.ok:
        for link in json.loads(addrs.stdout or "[]"):
            for info in link.get("addr_info", []):
                net = ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                if isinstance(net, IPv4Network) and not net.is_loopback and link.get("ifname") not in own_bridges:
                    found.append((net, f"interface {link.get('ifname')}"))
    routes = shell.run(["ip", "-j", "-4", "route"], check=False)
    if routes.ok:
        for route in json.loads(routes.stdout or "[]"):
            dst = route.get("dst", "default")
            if dst != "default":
                net = ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
                if isinstance(net, IPv4Network) and route.get("dev") not in own_bridges:
                    found.append((net, f"a route via {route.get('dev', '?')}"))
    return found
