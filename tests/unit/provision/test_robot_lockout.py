"""The Robot firewall is checked the way Robot applies it (first match, no match discards, no state) against
the address ops connect from, before anything is sent."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest
from provision_testdata import make_fleet

from drape_fleet.hetzner.robot_firewall import (
    RobotFirewallError,
    RobotRule,
    first_match,
    refuse_lockout,
    robot_firewall,
)


def test_ops_from_the_allowlist_reach_ssh_others_do_not() -> None:
    fleet = make_fleet()
    rules = robot_firewall(fleet, "ax1")
    ssh = first_match(rules, source=IPv4Address("203.0.113.7"), destination=IPv4Address("203.0.113.11"), port=22)
    assert ssh is not None and ssh.name == "ssh admin 1"
    refuse_lockout(rules, fleet, "ax1", "203.0.113.7")
    # The reply rule (tcp, ack) covers high ports but never a new connection to 22.
    assert first_match(rules, source=IPv4Address("198.51.100.9"), destination=IPv4Address("203.0.113.11"),
                       port=22) is None
    with pytest.raises(RobotFirewallError, match=r"you connect from 198\.51\.100\.9.*no rule accepts it.*"
                                                 r"Nothing was sent to Robot.*198\.51\.100\.9/32"):
        refuse_lockout(rules, fleet, "ax1", "198.51.100.9")


def test_a_discard_before_the_ssh_rule_is_a_lock_out() -> None:
    fleet = make_fleet()
    rules = robot_firewall(fleet, "ax1")
    blocked = dataclasses.replace(rules, input=(RobotRule("block all ssh", action="discard", protocol="tcp",
                                                          dst_port="22"), *rules.input))
    with pytest.raises(RobotFirewallError, match="rule 'block all ssh' discards it"):
        refuse_lockout(blocked, fleet, "ax1", "203.0.113.7")


def test_ipv6_ops_are_not_judged_by_ipv4_rules() -> None:
    fleet = make_fleet()
    refuse_lockout(robot_firewall(fleet, "ax1"), fleet, "ax1", "2001:db8::7")
