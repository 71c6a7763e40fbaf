"""Hetzner Robot's stateless switch-port firewall, generated from the same policy as the host firewall.

Robot filters in front of the server: at most 10 rules per direction, first match wins, no match means
discard, and it keeps no connection state, so answers to the server's own outbound connections (TCP with
ACK set, DNS and NTP replies) need rules of their own. It filters IPv4 (IPv6 only with ``filter_ipv6``, off
here: the host's nftables filters IPv6). The host firewall stays the authority; Robot's is the outer layer.

Two ways out: ``as_json()`` as a file ops can read and apply by hand, or ``form()`` for
``RobotClient.firewall.apply`` (``drape_fleet.hetzner.robot``), which POSTs it to ``/firewall/{server-number}``
form-encoded, as the webservice wants, and waits for it to be active.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

from drape_fleet.config.models import FleetConfig
from drape_fleet.provision.firewall import firewall_policy

MAX_RULES = 10
EPHEMERAL = "32768-65535"


class RobotFirewallError(ValueError):
    """The policy cannot be expressed within Robot's limits; the message says what to change."""


@dataclass(frozen=True)
class RobotRule:
    name: str
    action: str = "accept"
    ip_version: str | None = "ipv4"
    protocol: str | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    src_port: str | None = None
    dst_port: str | None = None
    tcp_flags: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class RobotFirewall:
    server_number: int
    input: tuple[RobotRule, ...]
    output: tuple[RobotRule, ...]
    whitelist_hos: bool = True
    filter_ipv6: bool = False

    def form(self) -> list[tuple[str, str]]:
        """The webservice's form fields, in order (``rules[input][0][name]=...``)."""
        items = [("status", "active"), ("filter_ipv6", str(self.filter_ipv6).lower()),
                 ("whitelist_hos", str(self.whitelist_hos).lower())]
        for direction, rules in (("input", self.input), ("output", self.output)):
            for index, rule in enumerate(rules):
                items += [(f"rules[{direction}][{index}][{key}]", value) for key, value in rule.as_dict().items()]
        return items

    def as_json(self) -> dict[str, Any]:
        return {"server_number": self.server_number, "status": "active", "filter_ipv6": self.filter_ipv6,
                "whitelist_hos": self.whitelist_hos,
                "rules": {"input": [r.as_dict() for r in self.input], "output": [r.as_dict() for r in self.output]}}


def _v4(networks: tuple[object, ...]) -> list[IPv4Network]:
    out = []
    for value in networks:
        net = ip_network(str(value), strict=False)
        if isinstance(net, IPv4Network):
            out.append(net)
    return out


def robot_firewall(fleet: FleetConfig, host_name: str) -> RobotFirewall:
    host = fleet.host(host_name)
    if host.robot_server_number is None:
        raise RobotFirewallError(f"{host_name} has no robot_server_number in the fleet file: add it (Robot, "
                                 "Servers list, column #)")
    policy = firewall_policy(fleet, host_name)
    ssh = next(r for r in policy.inbound if r.name == "ssh")
    api = next(r for r in policy.inbound if r.name == "docker-api")
    public = f"{host.public_address}/32"
    rules: list[RobotRule] = []
    for index, net in enumerate(_v4(ssh.sources or ())):
        rules.append(RobotRule(f"ssh admin {index + 1}", protocol="tcp", src_ip=str(net), dst_ip=public,
                               dst_port=str(ssh.ports[0])))
    for port in policy.published_public_ports:
        rules.append(RobotRule(f"previews {port}", protocol="tcp", dst_ip=public, dst_port=str(port)))
    for index, net in enumerate(_v4(api.sources or ())):
        rules.append(RobotRule(f"docker api backend {index + 1}", protocol="tcp", src_ip=str(net),
                               dst_port=str(api.ports[0])))
    rules += [
        RobotRule("icmp", protocol="icmp"),
        # Stateless: answers to the host's own connections must be let in explicitly.
        RobotRule("tcp replies", protocol="tcp", dst_port=EPHEMERAL, tcp_flags="ack"),
        RobotRule("dns replies", protocol="udp", src_port="53", dst_port=EPHEMERAL),
        RobotRule("ntp replies", protocol="udp", src_port="123", dst_port=EPHEMERAL),
    ]
    if len(rules) > MAX_RULES:
        raise RobotFirewallError(
            f"{host_name}: the policy needs {len(rules)} Robot input rules, Robot allows {MAX_RULES}. Fix: merge "
            "network.admin_allowlist / backend_addresses entries into fewer CIDR ranges (each entry is a rule)")
    return RobotFirewall(host.robot_server_number, tuple(rules), (RobotRule("all outgoing", ip_version=None),))


def _port_matches(spec: str | None, port: int) -> bool:
    if spec is None:
        return True
    low, _, high = spec.partition("-")
    return int(low) <= port <= int(high or low)


def first_match(firewall: RobotFirewall, *, source: IPv4Address, destination: IPv4Address,
                port: int) -> RobotRule | None:
    """The input rule Robot applies to a new TCP connection (a SYN without ACK, from an unknown ephemeral
    port) from ``source`` to ``destination:port``: first match wins, no match means discard."""
    for rule in firewall.input:
        if rule.ip_version not in (None, "ipv4") or rule.protocol not in (None, "tcp"):
            continue
        if rule.src_ip is not None and source not in ip_network(rule.src_ip, strict=False):
            continue
        if rule.dst_ip is not None and destination not in ip_network(rule.dst_ip, strict=False):
            continue
        if rule.src_port is not None or not _port_matches(rule.dst_port, port):
            continue  # a rule on the source port cannot be counted on for a connection ops open
        if rule.tcp_flags is not None and "syn" not in rule.tcp_flags.split("|"):
            continue
        return rule
    return None


def refuse_lockout(firewall: RobotFirewall, fleet: FleetConfig, host_name: str, ops_address: str) -> None:
    """Refuse a rule set under which ops, connecting from ``ops_address``, could not open SSH to the host."""
    host = fleet.host(host_name)
    source = ip_address(ops_address)
    if not isinstance(source, IPv4Address) or not isinstance(host.public_address, IPv4Address):
        return  # Robot filters IPv4 only here (filter_ipv6 off): IPv6 is not cut off by these rules
    port = fleet.environment.ssh_port
    rule = first_match(firewall, source=source, destination=host.public_address, port=port)
    if rule is None or rule.action != "accept":
        verdict = f"rule {rule.name!r} discards it" if rule else "no rule accepts it (Robot then discards)"
        raise RobotFirewallError(
            f"{host_name}: you connect from {source}, and under these rules SSH to {host.public_address}:{port} "
            f"from there is cut off: {verdict}. Nothing was sent to Robot. Fix: add {source}/32 (or your VPN's "
            "range) to network.admin_allowlist, or apply from an allowed address")
