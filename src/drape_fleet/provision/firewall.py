"""The host firewall as a model (who may reach what), rendered as an nftables table of our own.

The same ``FirewallPolicy`` feeds the host's nftables ruleset (here) and the Hetzner Robot rules
(``drape_fleet.hetzner.robot_firewall``), so the two cannot disagree.

nftables, not iptables/ufw, and only our own table: ``table inet drape_filter`` (IPv4 and IPv6 at once).
The file first creates then deletes that table, then defines it: loading it replaces our table atomically
and leaves every other table alone (Docker's, and a lab host's DNS redirection). Never ``flush ruleset``.

Why a forward chain: Docker publishes container ports by DNAT in prerouting, before the input hook, so an
input-only firewall never sees that traffic ("Docker bypasses ufw"). Our forward chain looks at connections
that were DNAT'ed (``ct status dnat``) and lets through only the published ports open to everyone and
traffic from the backend's addresses; everything else is dropped before it reaches a container.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, collapse_addresses, ip_network

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.provisioning import FENCED_RANGES
from drape_fleet.provision.render import render

TABLE = "drape_filter"
FAMILY = "inet"
RULESET_PATH = "/etc/drape/firewall.nft"
CLOSED_RULESET_PATH = "/etc/drape/firewall-closed.nft"
UNIT_NAME = "drape-firewall.service"

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Allow:
    """Accept new TCP connections to ``ports`` from ``sources`` (None: from anywhere), optionally only
    to one of the host's addresses."""

    name: str
    ports: tuple[int, ...]
    sources: tuple[Network, ...] | None = None
    destination: Address | None = None


@dataclass(frozen=True)
class FirewallPolicy:
    host: str
    inbound: tuple[Allow, ...]
    published_public_ports: tuple[int, ...]
    """Container ports published on these host ports are open to everyone."""
    published_sources: tuple[Network, ...]
    """Every other published port is reachable only from these addresses (the backend)."""
    admin_sources: tuple[Network, ...]
    preview_interfaces: str = "drp*"
    """Bridges of preview networks: no new connection from them to the host, to each other or to a fenced
    range; into them only from the backend."""
    private_networks: tuple[Network, ...] = ()
    fenced: tuple[Network, ...] = ()
    """What previews may not reach: ``FENCED_RANGES`` and the private network, merged."""
    preview_allowed: tuple[Network, ...] = ()
    """Holes in ``fenced`` that previews may reach (listed in the fleet file)."""
    preview_closed_ports: tuple[int, ...] = ()
    preview_rate: tuple[int, int] = (50, 200)
    """New outbound connections per preview address: (per second, burst)."""
    monitoring: Allow | None = None
    """Exporters (node_exporter, the services' metrics) on the private address, only from the monitoring server
    (the fleet file's ``[monitoring]``); None without that section."""


class FirewallRefused(ValueError):
    """Applying this policy would lock ops out (or cannot be expressed); nothing was touched."""


def _networks(values: tuple[object, ...]) -> tuple[Network, ...]:
    return tuple(ip_network(str(v), strict=False) for v in values)


def firewall_policy(fleet: FleetConfig, host_name: str) -> FirewallPolicy:
    host = fleet.host(host_name)
    admin = _networks(fleet.network.admin_allowlist)
    backend = _networks(fleet.network.backend_addresses)
    public_ports = tuple(sorted(set(fleet.provisioning.firewall.public_ports)))
    inbound = (
        Allow("ssh", (fleet.environment.ssh_port,), sources=admin),
        Allow("previews", public_ports),
        Allow("docker-api", (fleet.network.docker_api_port,), sources=backend,
              destination=host.private_address),
    )
    firewall = fleet.provisioning.firewall
    private = _networks(firewall.private_network) or tuple(
        sorted({*_networks(tuple(h.private_address for h in fleet.hosts)), *backend},
               key=lambda n: (n.version, int(n.network_address), n.prefixlen)))
    return FirewallPolicy(host=host.name, inbound=inbound, published_public_ports=public_ports,
                          published_sources=backend, admin_sources=admin,
                          preview_interfaces=firewall.preview_interfaces, private_networks=private,
                          fenced=_merged((*_networks(FENCED_RANGES), *private)),
                          preview_allowed=_merged(_networks(firewall.preview_allowed_destinations)),
                          preview_closed_ports=tuple(sorted(set(firewall.preview_closed_ports))),
                          preview_rate=(firewall.preview_new_connections_per_second,
                                        firewall.preview_new_connections_burst),
                          monitoring=_monitoring_rule(fleet, host_name))


def _merged(networks: tuple[Network, ...]) -> tuple[Network, ...]:
    """Overlapping ranges merged (nftables refuses overlapping elements in an interval set)."""
    v4 = collapse_addresses(n for n in networks if isinstance(n, IPv4Network))
    v6 = collapse_addresses(n for n in networks if isinstance(n, IPv6Network))
    return (*v4, *v6)


def _monitoring_rule(fleet: FleetConfig, host_name: str) -> Allow | None:
    if fleet.monitoring is None:
        return None
    server = fleet.host(fleet.monitoring.server)
    return Allow("monitoring", tuple(sorted(set(fleet.monitoring.exporter_ports))),
                 sources=_networks((server.private_address,)), destination=fleet.host(host_name).private_address)


def check_ops_address(policy: FirewallPolicy, ops_address: Address) -> None:
    """Refuse a policy whose SSH rule would not admit the address ops connect from."""
    ssh = next(rule for rule in policy.inbound if rule.name == "ssh")
    if ssh.sources is not None and not any(ops_address in net for net in ssh.sources):
        allowed = ", ".join(str(n) for n in ssh.sources)
        raise FirewallRefused(
            f"{policy.host}: you connect from {ops_address}, which the admin allowlist ({allowed}) does not "
            f"include: the firewall would lock you out. Fix: add {ops_address}/32 (or your VPN's range) to "
            f"network.admin_allowlist in the fleet file, or connect from an allowed address")


# ---------------------------------------------------------------------------------------------------
# The values files/firewall/*.j2 shape into text
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddressSet:
    """A pair of named nftables sets, ``<name>_v4`` and ``<name>_v6`` (an empty one matches nothing)."""

    name: str
    v4: tuple[str, ...]
    v6: tuple[str, ...]


@dataclass(frozen=True)
class InputRule:
    """One ``accept`` in the input chain: from each source set (None: from anywhere), to ``daddr`` if set."""

    name: str
    ports: tuple[int, ...]
    daddr: tuple[str, str] | None
    """(``ip``/``ip6``, the host's address) when only that address of the host is open."""
    source_sets: tuple[tuple[str, str], ...] | None


def _set_name(rule: str, version: int) -> str:
    return f"{rule.replace('-', '_')}_v{version}"


def _split(networks: tuple[Network, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v4 = sorted((n for n in networks if n.version == 4), key=lambda n: (int(n.network_address), n.prefixlen))
    v6 = sorted((n for n in networks if n.version == 6), key=lambda n: (int(n.network_address), n.prefixlen))
    return tuple(str(n) for n in v4), tuple(str(n) for n in v6)


def _address_set(name: str, networks: tuple[Network, ...]) -> AddressSet:
    v4, v6 = _split(networks)
    return AddressSet(name.replace("-", "_"), v4, v6)


def _source_sets(name: str, networks: tuple[Network, ...],
                 only_version: int | None = None) -> tuple[tuple[str, str], ...]:
    """(``ip``/``ip6``, set name) for each address family that has sources (and that ``only_version`` allows)."""
    v4, v6 = _split(networks)
    found = []
    if v4 and only_version in (None, 4):
        found.append(("ip", _set_name(name, 4)))
    if v6 and only_version in (None, 6):
        found.append(("ip6", _set_name(name, 6)))
    return tuple(found)


def _input_rule(rule: Allow) -> InputRule:
    daddr = None
    if rule.destination is not None:
        daddr = ("ip" if rule.destination.version == 4 else "ip6", str(rule.destination))
    sources = None if rule.sources is None else _source_sets(
        rule.name, rule.sources, rule.destination.version if rule.destination is not None else None)
    return InputRule(rule.name, rule.ports, daddr, sources)


def nftables_ruleset(policy: FirewallPolicy) -> str:
    """The complete file loaded with ``nft -f`` (files/firewall/drape-firewall.nft.j2): replaces our table,
    touches nothing else."""
    address_sets = [_address_set(rule.name, rule.sources) for rule in policy.inbound if rule.sources is not None]
    address_sets += [_address_set("published", policy.published_sources),
                     _address_set("fenced", policy.fenced),
                     _address_set("preview_allowed", policy.preview_allowed)]
    if policy.monitoring is not None and policy.monitoring.sources is not None:
        address_sets.append(_address_set(policy.monitoring.name, policy.monitoring.sources))
    return render("firewall/drape-firewall.nft.j2", family=FAMILY, table=TABLE, address_sets=address_sets,
                  previews=policy.preview_interfaces, input_rules=[_input_rule(r) for r in policy.inbound],
                  monitoring=None if policy.monitoring is None else _input_rule(policy.monitoring),
                  published_public_ports=policy.published_public_ports,
                  published_source_sets=_source_sets("published", policy.published_sources),
                  closed_ports=policy.preview_closed_ports, rate=policy.preview_rate)


def systemd_unit() -> str:
    """Loads our table at boot, before the network and before Docker; reload re-reads the file; stop leaves
    the closed table (``closed_ruleset``)."""
    return render("firewall/drape-firewall.service.j2", family=FAMILY, table=TABLE, ruleset_path=RULESET_PATH,
                  closed_path=CLOSED_RULESET_PATH)


def closed_ruleset(policy: FirewallPolicy) -> str:
    """What stays when the firewall unit stops: previews cut off, never unfenced."""
    return render("firewall/drape-firewall-closed.nft.j2", family=FAMILY, table=TABLE, unit=UNIT_NAME,
                  previews=policy.preview_interfaces)
