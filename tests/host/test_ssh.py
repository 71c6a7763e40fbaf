"""SSH: keys only, no root login, modern algorithms (effective config from `sshd -T`, and ssh-audit from outside)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drape_fleet.config import FleetConfig, Host

POST_QUANTUM_KEX = {"sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com", "mlkem768x25519-sha256"}
AEAD_OR_CTR = {"aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com",
               "aes256-ctr", "aes192-ctr", "aes128-ctr"}


@pytest.fixture(scope="module")
def sshd(host: Any) -> dict[str, str]:
    effective: dict[str, str] = {}
    for line in host.check_output("sshd -T").splitlines():
        key, _, value = line.partition(" ")
        effective.setdefault(key.lower(), value)
    return effective


def test_keys_only_no_root(sshd: dict[str, str], fleet: FleetConfig) -> None:
    assert sshd["permitrootlogin"] == "no"
    assert sshd["passwordauthentication"] == "no"
    assert sshd["kbdinteractiveauthentication"] == "no"
    assert sshd["permitemptypasswords"] == "no"
    assert sshd["pubkeyauthentication"] == "yes"
    assert sshd["authenticationmethods"] == "publickey"
    assert sshd["allowusers"].split() == [fleet.environment.deploy_user]


def test_less_to_attack(sshd: dict[str, str]) -> None:
    assert sshd["x11forwarding"] == "no"
    assert sshd["allowagentforwarding"] == "no"
    assert sshd["allowtcpforwarding"] == "no"
    assert sshd["permittunnel"] == "no"
    assert int(sshd["maxauthtries"]) <= 3
    assert int(sshd["logingracetime"]) <= 60


def test_modern_algorithms_only(sshd: dict[str, str]) -> None:
    assert set(sshd["kexalgorithms"].split(",")) <= POST_QUANTUM_KEX
    assert set(sshd["ciphers"].split(",")) <= AEAD_OR_CTR
    assert all(mac.endswith("-etm@openssh.com") for mac in sshd["macs"].split(","))
    assert sshd["hostkeyalgorithms"] == "ssh-ed25519"


def test_sshd_listens_where_the_fleet_says(host: Any, fleet: FleetConfig) -> None:
    port = fleet.environment.ssh_port
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening or host.socket(f"tcp://:::{port}").is_listening
    assert host.service("ssh").is_running
    socket = host.run("systemctl is-enabled ssh.socket").stdout.strip()
    assert socket in ("", "disabled", "masked", "not-found"), "ssh.socket would override Port in sshd_config"


def test_ssh_audit_finds_no_failure_and_no_warning(me: Host, fleet: FleetConfig) -> None:
    """From this machine, as an attacker would see the server."""
    tool = shutil.which("ssh-audit") or str(Path(sys.executable).with_name("ssh-audit"))
    if not Path(tool).exists():
        pytest.fail("ssh-audit is not installed here: `pip install drape-fleet[ops]` brings it")
    result = subprocess.run([tool, "-j", "--skip-rate-test", "-p", str(fleet.environment.ssh_port),
                             str(me.public_address)], capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(result.stdout)
    problems = [(section, alg["algorithm"], notes) for section in ("kex", "key", "enc", "mac")
                for alg in report.get(section, []) for notes in [alg.get("notes", {})]
                if notes.get("fail") or notes.get("warn")]
    assert problems == [], problems
    assert report.get("cves") == []
    assert result.returncode == 0, result.stdout[-500:]
