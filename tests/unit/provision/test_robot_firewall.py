"""Robot firewall rules (exact) and the webservice client against a local server that answers as the
Robot webservice documents (form bodies, Basic auth, JSON, error objects, 'in process' status)."""

from __future__ import annotations

import base64
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from json_http import JsonHandler
from provision_testdata import make_fleet

from drape_fleet.config import FleetConfig
from drape_fleet.hetzner.robot_firewall import MAX_RULES, RobotClient, RobotError, RobotFirewallError, robot_firewall


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


class FakeRobot(JsonHandler):
    state: ClassVar[dict[str, Any]] = {}

    def _authorised(self) -> bool:
        expected = "Basic " + base64.b64encode(b"robot-user:secret").decode()
        if self.headers.get("Authorization") != expected:
            self.send_json(401, {"error": {"status": 401, "code": "UNAUTHORIZED", "message": "Unauthorized"}})
            return False
        if self.state.get("rate_limited"):
            self.send_json(403, {"error": {"status": 403, "code": "RATE_LIMIT_EXCEEDED",
                                           "message": "Rate limit exceeded"}})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised():
            return
        self.state["gets"] = self.state.get("gets", 0) + 1
        status = "active" if self.state["gets"] >= 2 else "in process"
        self.send_json(200, {"firewall": {"server_number": 2100001, "status": status,
                                      "rules": self.state.get("rules", {})}})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        length = int(self.headers["Content-Length"])
        self.state["content_type"] = self.headers["Content-Type"]
        self.state["form"] = urllib.parse.parse_qsl(self.rfile.read(length).decode())
        self.state["path"] = self.path
        self.send_json(202, {"firewall": {"server_number": 2100001, "status": "in process"}})


@pytest.fixture
def robot() -> Iterator[str]:
    FakeRobot.state = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRobot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_apply_posts_the_form_and_waits_until_active(robot: str, fleet: FleetConfig) -> None:
    firewall = robot_firewall(fleet, "ax1")
    client = RobotClient("robot-user", "secret", base_url=robot)
    state = client.apply(firewall, poll_s=0.01)
    assert state["status"] == "active"
    assert FakeRobot.state["path"] == "/firewall/2100001"
    assert FakeRobot.state["content_type"] == "application/x-www-form-urlencoded"
    assert FakeRobot.state["form"] == firewall.form()


def test_errors_are_mapped(robot: str, fleet: FleetConfig) -> None:
    with pytest.raises(RobotError, match=r"401 UNAUTHORIZED.*three failed logins block your IP"):
        RobotClient("robot-user", "wrong", base_url=robot).firewall(2100001)
    FakeRobot.state["rate_limited"] = True
    with pytest.raises(RobotError, match=r"403 RATE_LIMIT_EXCEEDED.*wait a few minutes"):
        RobotClient("robot-user", "secret", base_url=robot).apply(robot_firewall(fleet, "ax1"))


def test_unreachable_webservice() -> None:
    with pytest.raises(RobotError, match=r"UNREACHABLE"):
        RobotClient("u", "p", base_url="http://127.0.0.1:9", timeout=2).firewall(1)
