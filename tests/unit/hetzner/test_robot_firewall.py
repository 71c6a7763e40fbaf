"""Robot firewall rules (exact), and applying them through the client to the fake webservice (form bodies,
'in process' until Robot has applied them, a second change refused meanwhile)."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock
from fakes.robot import RobotFake
from fleets import make_fleet

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.robot import RobotClient, RobotConflict
from drape_fleet.hetzner.robot_firewall import MAX_RULES, RobotFirewallError, robot_firewall


def test_rules_exact(fleet: FleetConfig) -> None:
    firewall = robot_firewall(fleet, "ax1")
    assert firewall.server_number == 2100001
    assert [r.as_dict() for r in firewall.input] == [
        {"name": "ssh admin 1", "action": "accept", "ip_version": "ipv4", "protocol": "tcp",
         "src_ip": "203.0.113.7/32", "dst_ip": "203.0.113.11/32", "dst_port": "22"},
        {"name": "previews 80", "action": "accept", "ip_version": "ipv4", "protocol": "tcp",
         "dst_ip": "203.0.113.11/32", "dst_port": "80"},
        {"name": "previews 443", "action": "accept", "ip_version": "ipv4", "protocol": "tcp",
         "dst_ip": "203.0.113.11/32", "dst_port": "443"},
        {"name": "docker api backend 1", "action": "accept", "ip_version": "ipv4", "protocol": "tcp",
         "src_ip": "10.0.0.2/32", "dst_port": "2376"},
        {"name": "icmp", "action": "accept", "ip_version": "ipv4", "protocol": "icmp"},
        {"name": "tcp replies", "action": "accept", "ip_version": "ipv4", "protocol": "tcp",
         "dst_port": "32768-65535", "tcp_flags": "ack"},
        {"name": "dns replies", "action": "accept", "ip_version": "ipv4", "protocol": "udp", "src_port": "53",
         "dst_port": "32768-65535"},
        {"name": "ntp replies", "action": "accept", "ip_version": "ipv4", "protocol": "udp", "src_port": "123",
         "dst_port": "32768-65535"},
    ]
    assert [r.as_dict() for r in firewall.output] == [{"name": "all outgoing", "action": "accept"}]
    form = firewall.form()
    assert form[:3] == [("status", "active"), ("filter_ipv6", "false"), ("whitelist_hos", "true")]
    assert ("rules[input][5][tcp_flags]", "ack") in form
    assert ("rules[output][0][action]", "accept") in form


def test_more_than_ten_rules_is_refused() -> None:
    admins = [f"198.51.100.{i}/32" for i in range(1, 6)]
    fleet = make_fleet(network={"admin_allowlist": admins, "backend_addresses": ["10.0.0.2/32"]})
    with pytest.raises(RobotFirewallError, match=f"needs 12 Robot input rules, Robot allows {MAX_RULES}"):
        robot_firewall(fleet, "ax1")


def test_apply_posts_the_form_and_waits_until_active(fake: RobotFake, robot: RobotClient, fleet: FleetConfig,
                                                     clock: FakeClock) -> None:
    firewall = robot_firewall(fleet, "ax1")
    state = robot.firewall.apply(firewall.server_number, firewall.form(), poll_s=10)
    assert state["status"] == "active"
    post = next(r for r in fake.state.requests if r.method == "POST")
    assert (post.path, post.form) == ("/firewall/2100001", firewall.form())
    assert clock.slept == [10]
    stored = robot.firewall.get(2100001)
    assert stored["rules"]["input"][5] == {"name": "tcp replies", "action": "accept", "ip_version": "ipv4",
                                           "protocol": "tcp", "dst_port": "32768-65535", "tcp_flags": "ack"}
    assert stored["rules"]["output"] == [{"name": "all outgoing", "action": "accept"}]


def test_a_second_change_while_one_is_in_process_is_refused(robot: RobotClient, fleet: FleetConfig) -> None:
    firewall = robot_firewall(fleet, "ax1")
    robot.http.request("POST", "/firewall/2100001", firewall.form())
    with pytest.raises(RobotConflict, match=r"409 FIREWALL_IN_PROCESS.*wait 30 s"):
        robot.firewall.apply(firewall.server_number, firewall.form())
