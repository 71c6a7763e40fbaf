"""First contact with a real sshd (a lab host), as ops make it: `invoke hosts.trust` for a production-shaped
fleet whose host is lab host ax1. Its fingerprint is known independently: lab.up read the key over the
engine, not over the network."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drape_fleet import hostkeys
from drape_fleet.config import FleetConfig
from drape_fleet.environments import LAB, environment
from drape_fleet.paths import project_root
from drape_fleet.ssh import ssh_run

pytestmark = pytest.mark.lab


def _invoke(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("invoke")), *args], cwd=project_root(),
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "200", **env})


@pytest.fixture
def ops_fleet(tmp_path: Path, lab_fleet: FleetConfig) -> dict[str, str]:
    """A production fleet file whose only host is lab host ax1, with nothing pinned yet."""
    ax1 = lab_fleet.hosts[0]
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'[environment]\nname = "production"\n[network]\nadmin_allowlist = ["{lab_fleet.network.admin_allowlist[0]}"]\n'
        f'backend_addresses = ["{lab_fleet.network.backend_addresses[0]}"]\n'
        f'[provisioning.firewall]\nprivate_network = ["{lab_fleet.provisioning.firewall.private_network[0]}"]\n'
        f'[[hosts]]\nname = "ax1"\npublic_address = "{ax1.public_address}"\nprivate_address = "{ax1.private_address}"\n'
        'robot_server_number = 1\ncapacity = { cpus = 1, memory_gib = 1, disk_gib = 1 }\n')
    return {"DRAPE_FLEET_FILE": str(fleet), "DRAPE_SSH_KEY": str(environment(LAB).ssh_key),
            "DRAPE_PKI_DIR": str(tmp_path / "pki")}


def test_first_contact_pins_the_key_the_expected_fingerprint_names(ops_fleet: dict[str, str]) -> None:
    [lab_pin] = hostkeys.pinned(hostkeys.read(environment(LAB).known_hosts), "ax1")
    known_hosts = Path(ops_fleet["DRAPE_FLEET_FILE"]).with_suffix(".known_hosts")

    wrong = hostkeys.fingerprint("AAAAC3NzaC1lZDI1NTE5AAAAIBLi7uZVZ5jfqIq0q6MgoYB6fKuUtPVnRz8WlYbRo6dB")
    refused = _invoke("hosts.trust", "--host", "ax1", "--fingerprint", wrong, env=ops_fleet)
    assert refused.returncode != 0
    assert f"not the expected {wrong}: do not connect" in " ".join(refused.stderr.split())
    assert not known_hosts.exists()

    without_answer = _invoke("hosts.trust", "--host", "ax1", env=ops_fleet)  # not a terminal: nobody confirms
    assert without_answer.returncode != 0 and lab_pin.fingerprint in without_answer.stdout
    assert not known_hosts.exists()

    pinned = _invoke("hosts.trust", "--host", "ax1", "--fingerprint", lab_pin.fingerprint, env=ops_fleet)
    assert pinned.returncode == 0, pinned.stderr
    assert f"ax1 pinned: {lab_pin.fingerprint}" in pinned.stdout
    [ops_pin] = hostkeys.read(known_hosts)
    assert (ops_pin.key_type, ops_pin.key) == (lab_pin.key_type, lab_pin.key)

    again = _invoke("hosts.trust", "--host", "ax1", env=ops_fleet)
    assert again.returncode == 0 and "ax1 already pinned" in again.stdout


def test_ssh_refuses_a_host_whose_key_is_not_the_pinned_one(ops_fleet: dict[str, str], tmp_path: Path) -> None:
    """The one policy at work: a pinned key that does not match ends the connection, with no prompt."""
    known_hosts = Path(ops_fleet["DRAPE_FLEET_FILE"]).with_suffix(".known_hosts")
    lab = environment(LAB).load()
    target = dataclasses.replace(lab.ssh_target(lab.fleet.hosts[0]), known_hosts=known_hosts)
    known_hosts.write_text(f"{target.hostname} ssh-ed25519 "
                           "AAAAC3NzaC1lZDI1NTE5AAAAIBLi7uZVZ5jfqIq0q6MgoYB6fKuUtPVnRz8WlYbRo6dB\n")
    result = ssh_run(target, "true", timeout=20, check=False)
    assert result.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    known_hosts.write_text("")
    result = ssh_run(target, "true", timeout=20, check=False)
    assert result.returncode == 255 and "Host key verification failed" in result.stderr
