"""The fake webservice as a process (how end-to-end tests start it), and the Robot tasks run as ops run them
(`invoke ...` in a subprocess) against it: `fleet.robot-list` as JSON and as a table, `robot.firewall --out`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from fleets import OPS_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY_MD5, fleet_data
from robot_process import robot_process

from drape_fleet.hetzner.robot import RobotClient

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = {
    "user": "robot-user", "password": "robot-secret",
    "servers": [
        {"number": 2100001, "name": "ax1", "ip": "203.0.113.11",
         "rescue_host_keys": [{"fingerprint": RESCUE_HOST_KEY_MD5, "type": "ED25519", "size": 256}]},
        {"number": 2100002, "name": "ax2", "ip": "203.0.113.99"},
        {"number": 2100007, "name": "", "ip": "198.51.100.7", "product": "AX102", "status": "in process"},
    ],
    "keys": [{"name": "ops", "fingerprint": OPS_KEY_MD5, "data": OPS_KEY}],
}


@pytest.fixture
def fake_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    hook_log = tmp_path / "hook.log"
    hook = f'echo "$ROBOT_SERVER_NUMBER $ROBOT_RESET_TYPE $ROBOT_BOOTS_RESCUE" >> {hook_log}'
    with robot_process(tmp_path / "robot", SCENARIO, on_reset=hook) as fake:
        yield fake.url, hook_log


def invoke(url: str, tmp_path: Path, *args: str, password: str = "robot-secret"  # noqa: S107 (the fake's)
           ) -> subprocess.CompletedProcess[str]:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(tomli_w.dumps(fleet_data()))
    env = {**os.environ, "DRAPE_ROBOT_URL": url, "DRAPE_ROBOT_USER": "robot-user",
           "DRAPE_ROBOT_PASSWORD": password, "DRAPE_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
           "DRAPE_FLEET_FILE": str(fleet), "DRAPE_ENV": "production", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_fake_runs_as_a_process_and_calls_the_reset_hook(fake_process: tuple[str, Path]) -> None:
    url, hook_log = fake_process
    client = RobotClient("robot-user", "robot-secret", base_url=url)
    client.boot.activate_rescue(2100001, (OPS_KEY_MD5,))
    client.reset.reset(2100001, "hw")
    client.reset.reset(2100002, "sw")
    deadline = time.monotonic() + 10
    while len(hook_log.read_text().splitlines() if hook_log.exists() else []) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(hook_log.read_text().splitlines()) == ["2100001 hw 1", "2100002 sw 0"]


def test_robot_list_prints_the_servers_as_json(fake_process: tuple[str, Path], tmp_path: Path) -> None:
    result = invoke(fake_process[0], tmp_path, "fleet.robot-list", "--json", "--keys")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout[result.stdout.index("{"):])
    assert [(s["number"], s["ip"], s["fleet_host"], s["status"]) for s in listing["servers"]] == [
        (2100001, "203.0.113.11", "ax1", "ready"), (2100002, "203.0.113.99", "ax2", "ready"),
        (2100007, "198.51.100.7", "", "in process")]
    assert listing["servers"][1]["note"] == "fleet file says ax2 is 203.0.113.12, Robot says 203.0.113.99"
    assert listing["keys"] == [{"name": "ops", "fingerprint": OPS_KEY_MD5, "type": "ED25519", "size": 256,
                                "in_rescue_keys": True}]


def test_robot_list_prints_a_table(fake_process: tuple[str, Path], tmp_path: Path) -> None:
    result = invoke(fake_process[0], tmp_path, "fleet.robot-list")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "2100007" in line or "2100001" in line]
    assert len(rows) == 2
    assert "FSN1-DC14" in rows[0] and "ax1" in rows[0]
    assert "in process" in rows[1]


def test_robot_list_with_wrong_credentials_fails_and_says_why(fake_process: tuple[str, Path],
                                                                  tmp_path: Path) -> None:
    result = invoke(fake_process[0], tmp_path, "fleet.robot-list", password="wrong")
    assert result.returncode == 1
    assert "401 UNAUTHORIZED" in result.stderr and "10 minutes" in result.stderr


def test_the_firewall_task_still_writes_its_rules(tmp_path: Path) -> None:
    out = tmp_path / "rules.json"
    result = invoke("http://127.0.0.1:9", tmp_path, "robot.firewall", "--host", "ax1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rules = json.loads(out.read_text())
    assert rules["server_number"] == 2100001
    assert rules["rules"]["input"][0]["name"] == "ssh admin 1"


def test_apply_refuses_rules_that_cut_off_the_ops_address(fake_process: tuple[str, Path], tmp_path: Path) -> None:
    """Issue 8: rules under which ops could not SSH in are never sent (the allowed case: test_robot_lockout.py)."""
    url = fake_process[0]
    refused = invoke(url, tmp_path, "robot.firewall", "--host", "ax1", "--apply", "--ops-address", "198.51.100.9")
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert "you connect from 198.51.100.9" in said and "Nothing was sent to Robot" in said
    client = RobotClient("robot-user", "robot-secret", base_url=url)
    assert client.firewall.get(2100001).get("status") == "disabled"  # untouched
