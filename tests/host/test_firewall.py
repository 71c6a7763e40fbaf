"""Firewall semantics, read from `nft -j list ruleset`: default deny inbound, SSH only from the admin
allowlist, HTTP/HTTPS open, the Docker API only from the backend on the private address, published
container ports filtered in a forward chain, and Docker's own tables left in place."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from drape_fleet.config import FleetConfig, Host

TABLE = ("inet", "drape_filter")


@dataclass
class Rule:
    verdict: str | None
    matches: dict[str, Any] = field(default_factory=dict)
    expressions: list[Any] = field(default_factory=list)


def _key(left: dict[str, Any]) -> str:
    if "payload" in left:
        return f"{left['payload'].get('protocol', '?')}.{left['payload']['field']}"
    if "meta" in left:
        return f"meta.{left['meta']['key']}"
    if "ct" in left:
        direction = left["ct"].get("dir")
        return f"ct.{direction + '.' if direction else ''}{left['ct']['key']}"
    return json.dumps(left, sort_keys=True)


def _values(right: Any, sets: dict[str, list[Any]]) -> list[Any]:
    if isinstance(right, str) and right.startswith("@"):
        return sets[right[1:]]
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    if isinstance(right, list):
        return right
    return [right]


@pytest.fixture(scope="module")
def ruleset(host: Any) -> dict[str, Any]:
    data = json.loads(host.check_output("nft -j list ruleset"))["nftables"]
    tables = {(t["table"]["family"], t["table"]["name"]) for t in data if "table" in t}
    sets: dict[str, list[Any]] = {}
    chains: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[Rule]] = {}
    for item in data:
        if "set" in item and (item["set"]["family"], item["set"]["table"]) == TABLE:
            sets[item["set"]["name"]] = [_element(e) for e in item["set"].get("elem", [])]
        if "chain" in item and (item["chain"]["family"], item["chain"]["table"]) == TABLE:
            chains[item["chain"]["name"]] = item["chain"]
    for item in data:
        if "rule" in item and (item["rule"]["family"], item["rule"]["table"]) == TABLE:
            rule = Rule(None, expressions=item["rule"]["expr"])
            for expr in item["rule"]["expr"]:
                if "match" in expr:
                    rule.matches[_key(expr["match"]["left"])] = _values(expr["match"]["right"], sets)
                for verdict in ("accept", "drop", "reject", "jump", "goto"):
                    if verdict in expr:
                        rule.verdict = verdict if verdict not in ("jump", "goto") else f"jump {expr[verdict]['target']}"
            rules.setdefault(item["rule"]["chain"], []).append(rule)
    return {"tables": tables, "chains": chains, "rules": rules}


def _element(element: Any) -> Any:
    if isinstance(element, dict) and "prefix" in element:
        return ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}")
    if isinstance(element, dict) and "range" in element:
        return tuple(element["range"])
    try:
        return ip_network(str(element))
    except ValueError:
        return element


def _port(value: Any) -> int:
    """nft's JSON cannot type ``ct original proto-dst`` and prints it raw: ``"0x50 [invalid type]"``."""
    if isinstance(value, str) and value.startswith("0x"):
        return int(value.split()[0], 16)
    return int(value)


def test_our_table_and_dockers_side_by_side(ruleset: dict[str, Any]) -> None:
    assert TABLE in ruleset["tables"]
    assert any(name == "nat" for _, name in ruleset["tables"]), "Docker's nat table is gone: was the ruleset flushed?"


def test_default_deny_inbound(ruleset: dict[str, Any]) -> None:
    chain = ruleset["chains"]["input"]
    assert (chain["hook"], chain["policy"]) == ("input", "drop")


def _accepted_tcp(ruleset: dict[str, Any]) -> dict[int, tuple[set[Any] | None, list[Any] | None]]:
    """port -> (allowed sources or None for anyone, required destination or None)."""
    allowed: dict[int, tuple[set[Any] | None, list[Any] | None]] = {}
    for rule in ruleset["rules"]["input"]:
        if rule.verdict != "accept" or "tcp.dport" not in rule.matches:
            continue
        sources = rule.matches.get("ip.saddr", []) + rule.matches.get("ip6.saddr", [])
        destination = rule.matches.get("ip.daddr") or rule.matches.get("ip6.daddr")
        for port in rule.matches["tcp.dport"]:
            previous = allowed.get(int(port), (set(), None))[0]
            merged = None if (not sources or previous is None) else {*previous, *map(ip_network, sources)}
            allowed[int(port)] = (merged, destination)
    return allowed


def test_only_the_intended_ports_are_open(ruleset: dict[str, Any], fleet: FleetConfig, me: Host) -> None:
    allowed = _accepted_tcp(ruleset)
    ssh, api = fleet.environment.ssh_port, fleet.network.docker_api_port
    exporters = fleet.monitoring.exporter_ports if fleet.monitoring is not None else ()
    assert set(allowed) == {ssh, api, *fleet.provisioning.firewall.public_ports, *exporters}
    if fleet.monitoring is not None:  # exporters: the monitoring server only, on the private address only
        server = fleet.host(fleet.monitoring.server)
        for port in exporters:
            assert allowed[port][0] == {ip_network(server.private_address)}
            assert [ip_address(a) for a in allowed[port][1] or []] == [me.private_address]
    assert allowed[ssh][0] == {ip_network(n) for n in fleet.network.admin_allowlist}
    assert allowed[api][0] == {ip_network(n) for n in fleet.network.backend_addresses}
    assert [ip_address(a) for a in allowed[api][1] or []] == [me.private_address]
    for port in fleet.provisioning.firewall.public_ports:
        assert allowed[port][0] is None


def test_other_accepts_are_loopback_established_and_icmp(ruleset: dict[str, Any]) -> None:
    for rule in ruleset["rules"]["input"]:
        if rule.verdict != "accept" or "tcp.dport" in rule.matches:
            continue
        keys = set(rule.matches)
        assert keys & {"meta.iif", "meta.iifname", "ct.state", "icmp.type", "icmpv6.type"}, rule


def test_published_ports_filtered_in_forward(ruleset: dict[str, Any], fleet: FleetConfig) -> None:
    forward = ruleset["chains"]["forward"]
    assert forward["hook"] == "forward"
    assert any(r.verdict == "jump published" and "ct.status" in r.matches for r in ruleset["rules"]["forward"])
    published = ruleset["rules"]["published"]
    assert published[-1].verdict == "drop"
    sources = {ip_network(s) for r in published if r.verdict == "accept"
               for s in r.matches.get("ip.saddr", []) + r.matches.get("ip6.saddr", [])}
    assert sources == {ip_network(n) for n in fleet.network.backend_addresses}
    open_ports = {_port(p) for r in published if r.verdict == "accept"
                  for p in r.matches.get("ct.original.proto-dst", [])}
    assert open_ports == set(fleet.provisioning.firewall.public_ports)


def test_loaded_at_boot_without_flushing_others(host: Any) -> None:
    assert host.service("drape-firewall").is_enabled
    assert host.run("systemctl is-enabled nftables.service").stdout.strip() != "enabled"


def test_docker_api_not_on_the_public_address(me: Host, fleet: FleetConfig) -> None:
    """From this machine: nothing answers on the public address's Docker API port."""
    with pytest.raises(OSError), socket.create_connection((str(me.public_address), fleet.network.docker_api_port),
                                                          timeout=3):
        pass


# What previews must never reach unless the fleet file lists it (the reference ranges, written out here
# independently of the deploys): RFC 1918, carrier-grade NAT, link-local with the cloud metadata address,
# loopback, multicast; IPv6 ULA, link-local, loopback, multicast.
MUST_BE_FENCED = ("10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1", "100.64.0.1",
                  "100.127.255.254", "169.254.169.254", "127.0.0.1", "224.0.0.251", "239.255.255.250",
                  "fd00::1", "fe80::1", "::1", "ff02::1")
MAIL_PORTS = {25, 465, 587}


def _fence(ruleset: dict[str, Any], previews: str) -> list[Rule]:
    """The forward rules for new connections out of previews, in order."""
    return [r for r in ruleset["rules"]["forward"] if r.matches.get("meta.iifname") == [previews]
            and "meta.oifname" not in r.matches]


def _refuses(rule: Rule, ruleset: dict[str, Any]) -> bool:
    """Drops or rejects, itself or in the chain it jumps to (which must end in a refusal for everything)."""
    if rule.verdict in ("reject", "drop"):
        return True
    if rule.verdict and rule.verdict.startswith("jump "):
        target = ruleset["rules"].get(rule.verdict.split()[1], [])
        return bool(target) and all(r.verdict in ("reject", "drop") for r in target) and not target[-1].matches
    return False


def _covers(networks: list[Any], address: str) -> bool:
    return any(ip_address(address) in ip_network(n) for n in networks if ip_network(n).version ==
               ip_address(address).version)


def test_previews_are_fenced(ruleset: dict[str, Any], fleet: FleetConfig) -> None:
    """The runtime's contract: preview bridges (drp*) open nothing on the host, nothing to each other, nothing
    to any private, link-local (metadata), loopback or multicast range, nor the private network, unless the
    fleet file lists it; only the backend opens connections into them."""
    firewall = fleet.provisioning.firewall
    previews = firewall.preview_interfaces
    input_rules = ruleset["rules"]["input"]
    fence = next(i for i, r in enumerate(input_rules) if r.matches.get("meta.iifname") == [previews])
    assert input_rules[fence].verdict == "drop"
    assert all("tcp.dport" not in r.matches and not {"icmp.type", "icmpv6.type"} & set(r.matches)
               for r in input_rules[:fence])
    forward = ruleset["rules"]["forward"]
    jump = next(i for i, r in enumerate(forward) if r.verdict == "jump published")
    fences = [(set(r.matches), r.verdict, r.matches) for r in forward[:jump]]
    assert ({"meta.iifname", "meta.oifname"}, "drop") in [(k, v) for k, v, _ in fences]

    out = _fence(ruleset, previews)
    allowed = [n for r in out if r.verdict == "accept" for n in r.matches.get("ip.daddr", []) +
               r.matches.get("ip6.daddr", [])]
    refused = [n for r in out if _refuses(r, ruleset) for n in r.matches.get("ip.daddr", []) +
               r.matches.get("ip6.daddr", [])]
    listed = [str(n) for n in firewall.preview_allowed_destinations]
    for address in MUST_BE_FENCED:
        if not _covers(listed, address):
            assert _covers(refused, address) and not _covers(allowed, address), address
    for address in [h.private_address for h in fleet.hosts] + [n.network_address for n in
                                                                fleet.network.backend_addresses]:
        assert _covers(refused, str(address)) and not _covers(allowed, str(address)), address
    for network in firewall.private_network:
        assert _covers(refused, str(network.network_address)), network
    # Every accept toward a listed range comes after the mail and rate rules and before the fence.
    first_accept = next(i for i, r in enumerate(out) if r.verdict == "accept")
    first_fence = next(i for i, r in enumerate(out) if _refuses(r, ruleset) and
                       {"ip.daddr", "ip6.daddr"} & set(r.matches))
    assert first_accept < first_fence
    backend = {ip_network(n) for n in fleet.network.backend_addresses}
    into = [(v, m) for k, v, m in fences if m.get("meta.oifname") == [previews] and "meta.iifname" not in m]
    assert [v for v, _ in into][-1] == "drop"
    assert {ip_network(n) for v, m in into if v == "accept" for n in m.get("ip.saddr", [])} == backend


def test_previews_send_no_mail(ruleset: dict[str, Any], fleet: FleetConfig) -> None:
    out = _fence(ruleset, fleet.provisioning.firewall.preview_interfaces)
    mail = next(i for i, r in enumerate(out) if _refuses(r, ruleset) and
                {int(p) for p in r.matches.get("tcp.dport", [])} >= MAIL_PORTS)
    assert all(r.verdict != "accept" for r in out[:mail])


def test_new_connections_per_preview_are_rate_limited(ruleset: dict[str, Any], fleet: FleetConfig) -> None:
    """A dynamic set keyed by the preview's source address, with a limit, rejecting over it (both families)."""
    firewall = fleet.provisioning.firewall
    out = _fence(ruleset, firewall.preview_interfaces)
    limited = {}
    for rule in out:
        for expr in rule.expressions:
            if "set" in expr and expr["set"].get("op") in ("add", "update"):
                key = json.dumps(expr["set"]["elem"])
                family = "ip6" if '"ip6"' in key else "ip"
                limits = [s["limit"] for s in expr["set"].get("stmt", []) if "limit" in s]
                if limits and limits[0].get("inv") and _refuses(rule, ruleset):
                    limited[family] = limits[0]
    assert set(limited) == {"ip", "ip6"}, limited
    for limit in limited.values():
        assert limit["rate"] == firewall.preview_new_connections_per_second and limit["per"] == "second"
        assert limit["burst"] == firewall.preview_new_connections_burst
    assert all(r.verdict != "accept" for r in out[:next(i for i, r in enumerate(out) if any(
        "set" in e for e in r.expressions))])


def test_stopping_the_firewall_leaves_previews_cut_off(host: Any) -> None:
    """Docker is bound to the firewall unit (never runs without it), and what a stopped unit leaves behind
    cuts every preview off (read from the host's unit files, not from our templates)."""
    docker = host.check_output("systemctl show docker.service -p BindsTo -p After").split("\n")
    assert any(line.startswith("BindsTo=") and "drape-firewall.service" in line for line in docker), docker
    assert any(line.startswith("After=") and "drape-firewall.service" in line for line in docker), docker
    socket = host.check_output("systemctl show docker.socket -p BindsTo")
    assert "drape-firewall.service" in socket, "docker.socket could start Docker without the firewall"
    stop = host.check_output("systemctl show drape-firewall.service -p ExecStop")
    argv = stop.split("argv[]=", 1)[1].split(" ;", 1)[0].split() if "argv[]=" in stop else []
    assert argv[:2] == ["/usr/sbin/nft", "-f"], stop
    text = host.file(argv[2]).content_string
    assert "flush ruleset" not in text
    assert host.run(f"nft -c -f {argv[2]}").rc == 0
    assert 'iifname "drp*" drop' in text and 'oifname "drp*" drop' in text and "ct status dnat drop" in text
