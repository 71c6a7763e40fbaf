"""The Robot client against the fake webservice: shapes of the answers, form-encoded requests, error codes mapped
to exceptions with fixes, backoff on rate limiting, and the first 401 ending the conversation."""

from __future__ import annotations

import socket

import pytest
import requests
from fake_clock import FakeClock
from fakes.robot import RobotFake
from fleets import OPS_KEY_MD5, RESCUE_HOST_KEY_MD5, make_fleet
from robot_account import account

from drape_fleet.hetzner.inventory import missing_from_robot, server_rows
from drape_fleet.hetzner.robot import (
    RobotAuthError,
    RobotClient,
    RobotConflict,
    RobotInvalidInput,
    RobotNotFound,
    RobotRateLimited,
    RobotUnavailable,
)
from drape_fleet.hetzner.robot._client import RetryPolicy, check_base_url
from drape_fleet.hetzner.robot.servers import Server


def test_servers_are_listed_and_read_in_the_documented_shape(robot: RobotClient) -> None:
    servers = robot.servers.list()
    assert [(s.number, s.name, s.ip, s.product, s.dc, s.status) for s in servers] == [
        (2100001, "ax1", "203.0.113.11", "AX102", "FSN1-DC14", "ready"),
        (2100002, "ax2", "203.0.113.12", "AX102", "FSN1-DC14", "ready"),
        (2100009, "spare", "198.51.100.9", "AX41-NVMe", "HEL1-DC2", "ready"),
    ]
    assert robot.servers.get(2100002).describe() == "#2100002 ax2 (203.0.113.12, AX102, FSN1-DC14)"


def test_a_wrong_server_number_says_how_to_find_the_right_one(robot: RobotClient) -> None:
    with pytest.raises(RobotNotFound, match=r"GET /server/42: 404 SERVER_NOT_FOUND.*invoke fleet.robot-list"):
        robot.servers.get(42)


def test_an_account_without_servers_or_keys_lists_nothing(clock: FakeClock) -> None:
    state = account(clock)
    state.servers.clear()
    state.keys.clear()
    with RobotFake(state) as fake:
        client = RobotClient("robot-user", "robot-secret", base_url=fake.url)
        assert client.servers.list() == []
        assert client.keys.list() == []
    assert [r.status for r in state.requests] == [404, 404]


def test_the_first_401_stops_every_further_request(fake: RobotFake, clock: FakeClock) -> None:
    client = RobotClient("robot-user", "wrong", base_url=fake.url, sleep=clock.sleep, clock=clock)
    with pytest.raises(RobotAuthError, match=r"401 UNAUTHORIZED.*blocks this IP for 10 minutes after 3 failed"):
        client.servers.list()
    with pytest.raises(RobotAuthError, match=r"not sent: Robot already refused these credentials"):
        client.servers.get(2100001)
    with pytest.raises(RobotAuthError, match=r"not sent: .*\(GET /server\)"):
        RobotClient("robot-user", "wrong", base_url=fake.url).keys.list()
    assert len(fake.state.requests) == 1
    assert fake.state.failed_logins("127.0.0.1") == 1
    assert clock.slept == []
    assert RobotClient("robot-user", "robot-secret", base_url=fake.url).keys.list()


def test_the_fake_blocks_an_ip_for_ten_minutes_after_three_failed_logins(fake: RobotFake, clock: FakeClock) -> None:
    wrong, right = ("robot-user", "wrong"), ("robot-user", "robot-secret")
    assert [requests.get(f"{fake.url}/server", auth=wrong, timeout=5).status_code for _ in range(3)] == [401] * 3
    assert requests.get(f"{fake.url}/server", auth=right, timeout=5).status_code == 401
    clock.now += 599
    assert requests.get(f"{fake.url}/server", auth=right, timeout=5).status_code == 401
    clock.now += 2
    assert requests.get(f"{fake.url}/server", auth=right, timeout=5).status_code == 200


def test_rate_limiting_is_waited_out_with_growing_pauses(clock: FakeClock) -> None:
    state = account(clock, limits={"server": (2, 60)})
    with RobotFake(state) as fake:
        client = RobotClient("robot-user", "robot-secret", base_url=fake.url, sleep=clock.sleep, clock=clock,
                             retry=RetryPolicy(rate_limit_budget_s=120))
        for _ in range(3):
            client.servers.get(2100001)
    assert [r.status for r in state.requests] == [200, 200, 403, 403, 403, 403, 200]
    assert clock.slept == [5, 10, 20, 40]  # 75 s: the window of 60 s has passed for the first call


def test_rate_limiting_beyond_the_budget_says_what_robot_allows(clock: FakeClock) -> None:
    state = account(clock, limits={"reset_post": (1, 3600)})
    with RobotFake(state) as fake:
        client = RobotClient("robot-user", "robot-secret", base_url=fake.url, sleep=clock.sleep, clock=clock,
                             retry=RetryPolicy(rate_limit_budget_s=30))
        client.reset.reset(2100002, "sw")
        with pytest.raises(RobotRateLimited, match=r"allows 1 requests per 3600 s on this route; waited 15 s"):
            client.reset.reset(2100002, "sw")
    assert clock.slept == [5, 10]
    assert state.resets == [(2100002, "sw")]


def test_rescue_activation_posts_the_key_fingerprints_and_answers_host_keys(fake: RobotFake,
                                                                           robot: RobotClient) -> None:
    before = robot.boot.rescue(2100001)
    assert (before.active, before.os, before.host_keys) == (False, "linux,vkvm", ())
    rescue = robot.boot.activate_rescue(2100001, (OPS_KEY_MD5, OPS_KEY_MD5))
    post = next(r for r in fake.state.requests if r.method == "POST")
    assert post.form == [("os", "linux"), ("authorized_key[]", OPS_KEY_MD5), ("authorized_key[]", OPS_KEY_MD5)]
    assert (rescue.active, rescue.os, rescue.authorized_keys) == (True, "linux", (OPS_KEY_MD5,))
    assert [(k.fingerprint, k.type, k.size) for k in rescue.host_keys] == [(RESCUE_HOST_KEY_MD5, "ED25519", 256)]
    assert rescue.password and rescue.password not in repr(rescue)
    with pytest.raises(RobotConflict, match=r"409 BOOT_ALREADY_ENABLED.*deactivate it"):
        robot.boot.activate_rescue(2100001, (OPS_KEY_MD5,))
    assert robot.boot.deactivate_rescue(2100001).active is False


def test_an_unknown_key_fingerprint_is_invalid_input(robot: RobotClient) -> None:
    with pytest.raises(RobotInvalidInput, match=r"400 INVALID_INPUT.*invalid: authorized_key") as refused:
        robot.boot.activate_rescue(2100001, ("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",))
    assert refused.value.invalid == ("authorized_key",)


def test_a_reset_boots_the_activated_rescue_system_once(fake: RobotFake, robot: RobotClient) -> None:
    assert robot.reset.options(2100001) == ("sw", "hw", "man", "power", "power_long")
    robot.boot.activate_rescue(2100001, (OPS_KEY_MD5,))
    assert robot.reset.reset(2100001, "hw") == "hw"
    assert robot.boot.rescue(2100001).active is False
    last = robot.boot.last_rescue(2100001)
    assert [k.fingerprint for k in last.host_keys] == [RESCUE_HOST_KEY_MD5]
    assert fake.state.resets == [(2100001, "hw")]


def test_reset_errors_are_mapped(robot: RobotClient) -> None:
    with pytest.raises(RobotInvalidInput, match=r"invalid: type"):
        robot.reset.reset(2100001, "reboot")  # type: ignore[arg-type]
    robot.reset.reset(2100001, "man")
    with pytest.raises(RobotConflict, match=r"409 RESET_MANUAL_ACTIVE.*technician"):
        robot.reset.reset(2100001, "hw")


def test_stored_keys_are_listed(robot: RobotClient) -> None:
    [key] = robot.keys.list()
    assert (key.name, key.fingerprint, key.type, key.size) == ("ops", OPS_KEY_MD5, "ED25519", 256)


def test_maintenance_is_retried_for_reads_only(fake: RobotFake, robot: RobotClient, clock: FakeClock) -> None:
    fake.state.maintenance = True
    with pytest.raises(RobotUnavailable, match=r"503 MAINTENANCE.*maintenance"):
        robot.servers.list()
    with pytest.raises(RobotUnavailable, match=r"POST /reset/2100001: 503 MAINTENANCE"):
        robot.reset.reset(2100001, "hw")
    assert [(r.method, r.status) for r in fake.state.requests] == [("GET", 503)] * 3 + [("POST", 503)]
    assert clock.slept == [5, 10]


def test_no_answer_is_retried_for_reads_and_never_for_a_reset(clock: FakeClock) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    client = RobotClient("u", "p", base_url=f"http://127.0.0.1:{port}", sleep=clock.sleep, clock=clock)
    with pytest.raises(RobotUnavailable, match=r"UNREACHABLE: http://127.0.0.1:\d+ did not answer"):
        client.servers.list()
    assert clock.slept == [5, 10]
    with pytest.raises(RobotUnavailable, match=r"may or may not have been carried out.*check in Robot"):
        client.reset.reset(2100001, "hw")
    assert clock.slept == [5, 10]


def test_credentials_travel_only_over_https_or_to_loopback() -> None:
    assert check_base_url("https://robot-ws.your-server.de/") == "https://robot-ws.your-server.de"
    assert check_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match=r"must be https://"):
        check_base_url("http://robot-ws.your-server.de")


def test_the_fake_refuses_a_body_that_is_not_form_encoded(fake: RobotFake) -> None:
    answer = requests.post(f"{fake.url}/reset/2100001", json={"type": "hw"}, auth=("robot-user", "robot-secret"),
                           timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_INPUT"
    assert fake.state.resets == []


def test_robot_list_rows_say_which_fleet_host_each_server_is() -> None:
    fleet = make_fleet()
    servers = [Server(2100001, "ax1", "203.0.113.99", None, "AX102", "FSN1-DC14", "ready", False),
               Server(2100005, "new", "203.0.113.12", None, "AX102", "FSN1-DC14", "in process", False)]
    rows = server_rows(servers, fleet)
    assert [(r.number, r.fleet_host, r.note) for r in rows] == [
        (2100001, "ax1", "fleet file says ax1 is 203.0.113.11, Robot says 203.0.113.99"),
        (2100005, "", "ax2 has this address but robot_server_number is not 2100005"),
    ]
    assert missing_from_robot(servers, fleet) == ["ax2 (robot_server_number 2100002)"]
    assert [r.fleet_host for r in server_rows(servers, None)] == ["", ""]
