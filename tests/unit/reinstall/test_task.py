"""`invoke provision --host ax1 --reinstall` as ops run it (invoke in its own process) against the fake Robot
webservice started as a process: the dry run, the confirmation (a terminal, --yes, neither), and every refusal
that must come before anything is touched, with its message. The fleet's servers sit on loopback addresses where
no SSH answers, so a confirmed run goes as far as a rescue system that never comes up.

The whole flow against a lab host acting as the rescue system is tests/lab/test_reinstall.py."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tomli_w
from fleets import OPS_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY_MD5, XFS_VOLUMES, fleet_data
from robot_process import ROBOT_PASSWORD, RobotProcess, robot_process

ROOT = Path(__file__).resolve().parents[3]
PROMPT = b"anything else stops: "
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCENARIO: dict[str, Any] = {
    "servers": [
        {"number": 2100001, "name": "ax1", "ip": "127.0.0.2",
         "rescue_host_keys": [{"fingerprint": RESCUE_HOST_KEY_MD5, "type": "ED25519", "size": 256}]},
        {"number": 2100002, "name": "ax2", "ip": "127.0.0.3"},
    ],
    "keys": [{"name": "ops", "fingerprint": OPS_KEY_MD5, "data": OPS_KEY}],
    "block_s": 120,
}
CONFIRMATION = ("Reinstall ax1: Robot server #2100001 ax1 (127.0.0.2, AX102, FSN1-DC14).\nThe running system is "
                "reset at once and Ubuntu-2404-noble-amd64-base.tar.gz is installed on a fresh RAID1 with LVM: ALL "
                "DATA ON BOTH DRIVES (/dev/nvme0n1 and /dev/nvme1n1) WILL BE DESTROYED.")


def loopback_fleet(**overrides: Any) -> dict[str, Any]:
    hosts = [{"name": "ax1", "public_address": "127.0.0.2", "private_address": "10.0.0.11",
              "robot_server_number": 2100001, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}},
             {"name": "ax2", "public_address": "127.0.0.3", "private_address": "10.0.0.12",
              "robot_server_number": 2100002, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}]
    reinstall = {"rescue_keys": [OPS_KEY_MD5],
                 "timeouts": {"rescue_boot_s": 1, "poll_s": 0.5, "scan_s": 1, "command_s": 5}}
    return fleet_data(hosts=hosts, reinstall=reinstall, **overrides)


class Ops:
    """Runs invoke the way ops do, with a production-shaped fleet file in a scratch directory and a scratch
    home (the reinstall's state, the secrets file): nothing of this machine's own configuration is read."""

    def __init__(self, tmp_path: Path, robot: RobotProcess) -> None:
        self.tmp_path, self.robot = tmp_path, robot
        self.fleet_file = tmp_path / "fleet.toml"
        self.write_fleet(loopback_fleet())

    def write_fleet(self, data: dict[str, Any]) -> None:
        self.fleet_file.write_text(tomli_w.dumps(data))

    def env(self, password: str | None) -> dict[str, str]:
        env = {**os.environ, "DRAPE_ENV": "production", "DRAPE_FLEET_FILE": str(self.fleet_file),
               "HOME": str(self.tmp_path / "home"), "DRAPE_SECRETS_FILE": str(self.tmp_path / "no-secrets.toml"),
               "DRAPE_SSH_KEY": str(self.tmp_path / "no-key"), "COLUMNS": "200"}
        for name in ("DRAPE_ROBOT_URL", "DRAPE_ROBOT_USER", "DRAPE_ROBOT_PASSWORD"):
            env.pop(name, None)
        if password is not None:
            env.update(self.robot.env(password))
        return env

    def run(self, *args: str, password: str | None = ROBOT_PASSWORD) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "invoke", "provision", *args], cwd=ROOT, env=self.env(password),
                              capture_output=True, text=True, timeout=120, check=False)

    def on_terminal(self, *args: str, answer: str) -> tuple[int, str]:
        """Run with a terminal (a pty) and type ``answer`` at the confirmation prompt."""
        main, secondary = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "invoke", "provision", *args], cwd=ROOT,
                                   env=self.env(ROBOT_PASSWORD), stdin=secondary, stdout=secondary,
                                   stderr=secondary)
        os.close(secondary)
        output, answered = b"", False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the other side closed: the process ended
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and PROMPT in output:
                os.write(main, answer.encode() + b"\n")
                answered = True
        os.close(main)
        text = ANSI.sub("", output.decode(errors="replace")).replace("\r\n", "\n")
        return process.wait(timeout=30), text


@pytest.fixture
def robot(tmp_path: Path) -> Iterator[RobotProcess]:
    with robot_process(tmp_path / "robot", SCENARIO) as fake:
        yield fake


@pytest.fixture
def ops(tmp_path: Path, robot: RobotProcess) -> Ops:
    return Ops(tmp_path, robot)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_dry_run_shows_the_steps_and_the_config_and_contacts_nothing(ops: Ops) -> None:
    result = ops.run("--host", "ax1", "--reinstall", "--dry", password=None)  # no credentials needed
    assert result.returncode == 0, result.stderr
    assert "Reinstall plan for ax1:" in result.stdout
    assert " 8. run installimage: installimage -a -c, detached, with a timeout" in result.stdout
    assert "installimage config (bios boot):" in result.stdout and "    SWRAIDLEVEL 1" in result.stdout
    assert "then: the provisioning (every deploy) and `invoke verify` of the new system" in result.stdout
    assert ops.robot.requests() == []


def test_without_a_terminal_or_yes_the_confirmation_is_shown_and_nothing_is_touched(ops: Ops) -> None:
    result = ops.run("--host", "ax1", "--reinstall")
    assert result.returncode == 1
    assert flat(CONFIRMATION) in flat(result.stdout)
    assert "not confirmed: nothing was touched. Run it on a terminal to answer, or pass --yes" in flat(result.stderr)
    assert ops.robot.calls() == ["GET /server/2100001 200", "GET /key 200"]  # the read-only preflight


def test_on_a_terminal_only_the_host_name_confirms_and_then_a_rescue_system_that_never_answers_times_out(
        ops: Ops) -> None:
    code, output = ops.on_terminal("--host", "ax1", "--reinstall", answer="yes")
    assert code == 1 and flat(CONFIRMATION) in flat(output) and "not confirmed: nothing was touched" in output
    assert ops.robot.posts() == []

    code, output = ops.on_terminal("--host", "ax1", "--reinstall", answer="ax1")
    assert code == 1
    assert ops.robot.posts() == ["POST /boot/2100001/rescue", "POST /reset/2100001"]
    assert "[4/12] wait for the rescue system" in output
    assert "step 'wait-rescue' (wait for the rescue system) failed after" in output
    assert "the rescue system's SSH: not within 1 s" in flat(output)
    assert "seen: no SSH answer at 127.0.0.2:22" in flat(output)
    assert "next: check the server in Robot" in flat(output) and "--restart" in output


def test_yes_confirms_without_asking(ops: Ops) -> None:
    result = ops.run("--host", "ax1", "--reinstall", "--yes")
    assert result.returncode == 1
    assert "confirmed by --yes" in result.stdout
    assert ops.robot.posts() == ["POST /boot/2100001/rescue", "POST /reset/2100001"]
    assert "the rescue system's SSH: not within 1 s" in flat(result.stderr)


@pytest.mark.parametrize(("number", "message"), [
    (2100002, "Robot server #2100002 ax2 (127.0.0.3, AX102, FSN1-DC14) does not have ax1's address 127.0.0.2 "
              "next: a wrong number would reinstall another server"),
    (2100999, "Robot has no server #2100999 on this account seen: Robot GET /server/2100999: 404 SERVER_NOT_FOUND"),
])
def test_a_wrong_server_number_is_refused_before_anything_is_touched(ops: Ops, number: int, message: str) -> None:
    data = loopback_fleet()
    data["hosts"][0]["robot_server_number"] = number
    data["hosts"][1]["robot_server_number"] = 2100003
    ops.write_fleet(data)
    result = ops.run("--host", "ax1", "--reinstall", "--yes")
    assert result.returncode == 1
    assert "step 'preflight' (check Robot and the layout) failed" in result.stderr
    assert message in flat(result.stderr)
    assert ops.robot.posts() == []


def test_wrong_credentials_stop_at_the_first_refusal(ops: Ops) -> None:
    result = ops.run("--host", "ax1", "--reinstall", "--yes", password="wrong")
    assert result.returncode == 1
    assert "Robot webservice: UNAUTHORIZED" in result.stderr
    assert ("Stopped at the first refusal: Robot blocks this IP for 10 minutes after 3 failed logins"
            in flat(result.stderr))
    assert ops.robot.calls() == ["GET /server/2100001 401"]


def test_after_three_failed_logins_from_elsewhere_the_blocked_ip_stops_the_run_at_its_first_refusal(ops: Ops) -> None:
    for _ in range(3):  # someone else on this address, with an old password
        assert requests.get(f"{ops.robot.url}/server", auth=("robot-user", "old"), timeout=10).status_code == 401
    blocked = ops.run("--host", "ax1", "--reinstall")  # the right password, from the blocked address
    assert blocked.returncode == 1 and "401 UNAUTHORIZED" in blocked.stderr
    assert "wait 10 minutes if earlier attempts failed too" in flat(blocked.stderr)
    assert ops.robot.calls() == ["GET /server 401"] * 3 + ["GET /server/2100001 401"]  # the run sent one request


def test_a_volume_plan_larger_than_the_drives_is_refused_before_anything_is_touched(ops: Ops) -> None:
    volumes = [{**XFS_VOLUMES[0], "size": "3000G"}, XFS_VOLUMES[1]]
    ops.write_fleet(loopback_fleet(provisioning={"storage": {"volumes": volumes}}))
    result = ops.run("--host", "ax1", "--reinstall", "--yes")
    assert result.returncode == 1
    assert "the disk layout is not valid" in result.stderr
    assert "the layout needs 3482624 MiB" in flat(result.stderr)
    assert "the drives offer 1830030 MiB. Fix: shrink the volumes by 1652594 MiB" in flat(result.stderr)
    assert ops.robot.requests() == []  # the fleet file is checked before Robot is asked anything


def test_reinstall_takes_exactly_one_host(ops: Ops) -> None:
    result = ops.run("--all", "--reinstall", "--dry")
    assert result.returncode == 1
    assert "--reinstall takes exactly one --host, and every deploy (no --all, no --only)" in result.stderr
