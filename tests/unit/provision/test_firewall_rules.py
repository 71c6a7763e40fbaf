from __future__ import annotations

from ipaddress import ip_address

import pytest
from provision_testdata import make_fleet

from drape_fleet.config import FleetConfig
from drape_fleet.provision.firewall import FirewallRefused, check_ops_address, firewall_policy, nftables_ruleset

EXPECTED = """\
#!/usr/sbin/nft -f
# Managed by drape-fleet (deploys/firewall.py). Replaces only table inet drape_filter:
# Docker's tables and anything else stay as they are (never `flush ruleset`).
table inet drape_filter {}
delete table inet drape_filter

table inet drape_filter {
  set ssh_v4 {
    type ipv4_addr; flags interval;
    elements = { 203.0.113.7/32 }
  }
  set ssh_v6 {
    type ipv6_addr; flags interval;
  }
  set docker_api_v4 {
    type ipv4_addr; flags interval;
    elements = { 10.0.0.2/32 }
  }
  set docker_api_v6 {
    type ipv6_addr; flags interval;
  }
  set published_v4 {
    type ipv4_addr; flags interval;
    elements = { 10.0.0.2/32 }
  }
  set published_v6 {
    type ipv6_addr; flags interval;
  }
  set fenced_v4 {
    type ipv4_addr; flags interval;
    elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, \
192.168.0.0/16, 224.0.0.0/3 }
  }
  set fenced_v6 {
    type ipv6_addr; flags interval;
    elements = { ::1/128, ::ffff:0:0/96, fc00::/7, fe80::/10, ff00::/8 }
  }
  set preview_allowed_v4 {
    type ipv4_addr; flags interval;
  }
  set preview_allowed_v6 {
    type ipv6_addr; flags interval;
  }
  # New connections per preview address, counted while they come (entries expire when a preview is quiet).
  set preview_rate_v4 {
    type ipv4_addr; flags dynamic; timeout 1m; size 65535;
  }
  set preview_rate_v6 {
    type ipv6_addr; flags dynamic; timeout 1m; size 65535;
  }

  chain input {
    type filter hook input priority filter - 10; policy drop;
    iif "lo" accept
    ct state established,related accept
    ct state invalid drop
    iifname "drp*" drop comment "previews open nothing on the host"
    # ICMP that IPv4 and IPv6 need to work (path MTU, neighbour discovery), and rate-limited pings.
    icmp type { destination-unreachable, time-exceeded, parameter-problem } accept
    icmp type echo-request limit rate 20/second accept
    icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, \
nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
    icmpv6 type echo-request limit rate 20/second accept
    ip saddr @ssh_v4 tcp dport 22 accept comment "ssh"
    tcp dport { 80, 443 } accept comment "previews"
    ip daddr 10.0.0.11 ip saddr @docker_api_v4 tcp dport 2376 accept comment "docker-api"
    limit rate 10/minute log prefix "drape-drop: " level info
  }

  # Published container ports: Docker DNATs them before the input hook, so they are filtered here.
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    ct state established,related accept
    iifname "drp*" oifname "drp*" drop comment "preview to preview"
    iifname "drp*" tcp dport { 25, 465, 587 } reject with tcp reset comment "previews send no mail"
    iifname "drp*" ct state new update @preview_rate_v4 { ip saddr limit rate over 50/second burst 200 \
packets } jump refuse comment "preview connection rate"
    iifname "drp*" ct state new update @preview_rate_v6 { ip6 saddr limit rate over 50/second burst 200 \
packets } jump refuse comment "preview connection rate"
    iifname "drp*" ip daddr @preview_allowed_v4 accept comment "listed for previews"
    iifname "drp*" ip6 daddr @preview_allowed_v6 accept comment "listed for previews"
    iifname "drp*" ip daddr @fenced_v4 jump refuse comment "preview to a fenced range"
    iifname "drp*" ip6 daddr @fenced_v6 jump refuse comment "preview to a fenced range"
    oifname "drp*" ip saddr @published_v4 accept comment "the backend into previews"
    oifname "drp*" ip6 saddr @published_v6 accept comment "the backend into previews"
    oifname "drp*" drop comment "nobody else into previews"
    ct status dnat jump published
  }

  # A refusal the tenant's program hears at once: a TCP reset (ICMP errors are rate-limited by the kernel to
  # about one a second per destination, so most would be lost and the connection would hang on retries).
  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }

  chain published {
    meta l4proto tcp ct original proto-dst { 80, 443 } accept comment "previews"
    ip saddr @published_v4 accept comment "backend"
    limit rate 10/minute log prefix "drape-drop-published: " level info
    drop
  }
}
"""


def test_ruleset_exact(fleet: FleetConfig) -> None:
    assert nftables_ruleset(firewall_policy(fleet, "ax1")) == EXPECTED


def test_never_flushes_the_whole_ruleset(fleet: FleetConfig) -> None:
    assert "flush ruleset" not in nftables_ruleset(firewall_policy(fleet, "ax1")).replace("`flush ruleset`", "")


def test_ipv6_admins_get_an_ip6_rule() -> None:
    fleet = make_fleet(network={"admin_allowlist": ["203.0.113.7/32", "2001:db8::/48"],
                                "backend_addresses": ["10.0.0.2/32"]})
    text = nftables_ruleset(firewall_policy(fleet, "ax2"))
    assert "elements = { 2001:db8::/48 }" in text
    assert 'ip6 saddr @ssh_v6 tcp dport 22 accept comment "ssh"' in text
    assert "ip daddr 10.0.0.12 ip saddr @docker_api_v4 tcp dport 2376" in text


def test_refuses_an_allowlist_without_the_ops_address(fleet: FleetConfig) -> None:
    policy = firewall_policy(fleet, "ax1")
    check_ops_address(policy, ip_address("203.0.113.7"))
    with pytest.raises(FirewallRefused, match=r"you connect from 198\.51\.100\.9.*lock you out.*198\.51\.100\.9/32"):
        check_ops_address(policy, ip_address("198.51.100.9"))
