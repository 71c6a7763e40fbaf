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
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from drape_fleet.config.models import FleetConfig

TABLE = "drape_filter"
FAMILY = "inet"
RULESET_PATH = "/etc/drape/firewall.nft"
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
    """Bridges of preview networks: no new connection from them to the host, to each other or to the private
    network; into them only from the backend."""
    private_networks: tuple[Network, ...] = ()


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
                          preview_interfaces=firewall.preview_interfaces, private_networks=private)


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
# nftables rendering
# ---------------------------------------------------------------------------------------------------

def _set_name(rule: str, version: int) -> str:
    return f"{rule.replace('-', '_')}_v{version}"


def _split(networks: tuple[Network, ...]) -> tuple[list[str], list[str]]:
    v4 = sorted((n for n in networks if n.version == 4), key=lambda n: (int(n.network_address), n.prefixlen))
    v6 = sorted((n for n in networks if n.version == 6), key=lambda n: (int(n.network_address), n.prefixlen))
    return [str(n) for n in v4], [str(n) for n in v6]


def _port_expr(ports: tuple[int, ...]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(str(p) for p in ports) + " }"


def _sets(name: str, networks: tuple[Network, ...]) -> list[str]:
    lines: list[str] = []
    v4, v6 = _split(networks)
    for version, items, kind in ((4, v4, "ipv4_addr"), (6, v6, "ipv6_addr")):
        lines.append(f"  set {_set_name(name, version)} {{")
        lines.append(f"    type {kind}; flags interval;")
        if items:
            lines.append(f"    elements = {{ {', '.join(items)} }}")
        lines.append("  }")
    return lines


def nftables_ruleset(policy: FirewallPolicy) -> str:
    """The complete file loaded with ``nft -f``: replaces our table, touches nothing else."""
    out = [
        "#!/usr/sbin/nft -f",
        "# Managed by drape-fleet (deploys/firewall.py). Replaces only table inet drape_filter:",
        "# Docker's tables and anything else stay as they are (never `flush ruleset`).",
        f"table {FAMILY} {TABLE} {{}}",
        f"delete table {FAMILY} {TABLE}",
        "",
        f"table {FAMILY} {TABLE} {{",
    ]
    for rule in policy.inbound:
        if rule.sources is not None:
            out += _sets(rule.name, rule.sources)
    out += _sets("published", policy.published_sources)
    out += _sets("private", policy.private_networks)
    previews = f'iifname "{policy.preview_interfaces}"'
    into_previews = f'oifname "{policy.preview_interfaces}"'
    out += [
        "",
        "  chain input {",
        "    type filter hook input priority filter - 10; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        "    ct state invalid drop",
        f'    {previews} drop comment "previews open nothing on the host"',
        "    # ICMP that IPv4 and IPv6 need to work (path MTU, neighbour discovery), and rate-limited pings.",
        "    icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
        "    icmp type echo-request limit rate 20/second accept",
        "    icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
        "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
        "    icmpv6 type echo-request limit rate 20/second accept",
    ]
    for rule in policy.inbound:
        ports = _port_expr(rule.ports)
        target = ""
        if rule.destination is not None:
            target = f"{'ip' if rule.destination.version == 4 else 'ip6'} daddr {rule.destination} "
        if rule.sources is None:
            out.append(f"    {target}tcp dport {ports} accept comment \"{rule.name}\"")
            continue
        v4, v6 = _split(rule.sources)
        if v4 and (rule.destination is None or rule.destination.version == 4):
            out.append(f"    {target}ip saddr @{_set_name(rule.name, 4)} tcp dport {ports} accept "
                       f"comment \"{rule.name}\"")
        if v6 and (rule.destination is None or rule.destination.version == 6):
            out.append(f"    {target}ip6 saddr @{_set_name(rule.name, 6)} tcp dport {ports} accept "
                       f"comment \"{rule.name}\"")
    out += [
        '    limit rate 10/minute log prefix "drape-drop: " level info',
        "  }",
        "",
        "  # Published container ports: Docker DNATs them before the input hook, so they are filtered here.",
        "  chain forward {",
        "    type filter hook forward priority filter - 10; policy accept;",
        "    ct state established,related accept",
        f'    {previews} {into_previews} drop comment "preview to preview"',
        f'    {previews} ip daddr @private_v4 drop comment "preview to the private network"',
        f'    {previews} ip6 daddr @private_v6 drop comment "preview to the private network"',
        f'    {into_previews} ip saddr @published_v4 accept comment "the backend into previews"',
        f'    {into_previews} ip6 saddr @published_v6 accept comment "the backend into previews"',
        f'    {into_previews} drop comment "nobody else into previews"',
        "    ct status dnat jump published",
        "  }",
        "",
        "  chain published {",
    ]
    if policy.published_public_ports:
        out.append(f"    meta l4proto tcp ct original proto-dst {_port_expr(policy.published_public_ports)} accept "
                   "comment \"previews\"")
    v4, v6 = _split(policy.published_sources)
    if v4:
        out.append(f"    ip saddr @{_set_name('published', 4)} accept comment \"backend\"")
    if v6:
        out.append(f"    ip6 saddr @{_set_name('published', 6)} accept comment \"backend\"")
    out += [
        '    limit rate 10/minute log prefix "drape-drop-published: " level info',
        "    drop",
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"


def systemd_unit() -> str:
    """Loads our table at boot, before the network and before Docker; reload re-reads the file."""
    return "\n".join([
        "# Managed by drape-fleet (deploys/firewall.py).",
        "[Unit]",
        "Description=drape-fleet host firewall (nftables table inet drape_filter)",
        "DefaultDependencies=no",
        "Before=network-pre.target docker.service",
        "Wants=network-pre.target",
        "After=local-fs.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart=/usr/sbin/nft -f {RULESET_PATH}",
        f"ExecReload=/usr/sbin/nft -f {RULESET_PATH}",
        f"ExecStop=/usr/sbin/nft delete table {FAMILY} {TABLE}",
        "",
        "[Install]",
        "WantedBy=sysinit.target",
        "",
    ])
