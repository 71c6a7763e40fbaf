"""Every SSH invocation comes from one target type: its argv and its ssh_config, exactly, and the places
that derive from it (pyinfra's connector, `invoke verify`, the lab, the deploy that probes a login)."""

from __future__ import annotations

from pathlib import Path

from provision_testdata import make_target

from drape_fleet.config import FleetConfig
from drape_fleet.lab.settings import LabSettings
from drape_fleet.provision.connector import OpenSshConnector
from drape_fleet.provision.inventory import groups, host_data, ssh_target
from drape_fleet.provision.verify import pytest_argv, ssh_config_text
from drape_fleet.ssh import SshTarget, ssh_config

TARGET = SshTarget(hostname="203.0.113.11", user="deploy", key=Path("/k/id_ed25519"),
                   known_hosts=Path("/k/production.known_hosts"), alias="ax1")

POLICY = [
    "-o", "User=deploy", "-o", "Port=22", "-o", "IdentityFile=/k/id_ed25519", "-o", "IdentitiesOnly=yes",
    "-o", "UserKnownHostsFile=/k/production.known_hosts", "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
    "-o", "LogLevel=ERROR",
]

BLOCK = """\
Host ax1 203.0.113.11
  HostName 203.0.113.11
  User deploy
  Port 22
  IdentityFile /k/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile /k/production.known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  BatchMode yes
  ConnectTimeout 10
  ServerAliveInterval 15
  ServerAliveCountMax 4
  LogLevel ERROR
"""


def test_argv_pins_host_keys_and_offers_one_key() -> None:
    assert TARGET.argv("sudo -n true") == ["ssh", *POLICY, "203.0.113.11", "sudo -n true"]
    assert TARGET.as_user("root").argv("id")[1:3] == ["-o", "User=root"]


def test_ssh_config_block_says_the_same_as_the_argv() -> None:
    assert TARGET.config_block() == BLOCK
    assert ssh_config([TARGET], [("ControlMaster", "auto")]) == BLOCK + "  ControlMaster auto\n"


def test_the_inventory_data_gives_the_connector_the_same_target(fleet: FleetConfig, tmp_path: Path) -> None:
    target = make_target(fleet, tmp_path)
    data = host_data(target, "ax1")
    assert ssh_target(data, "ax1") == target.ssh_target(fleet.host("ax1"))
    assert ssh_target({**data, "ssh_user": "root"}, "ax1") == target.ssh_target(fleet.host("ax1"), user="root")
    assert data["_sudo"] is True and data["fleet_environment"] == "production"


def test_connector_argv_is_the_target_with_its_multiplexing_socket(fleet: FleetConfig, tmp_path: Path) -> None:
    target = make_target(fleet, tmp_path)
    connector = OpenSshConnector.__new__(OpenSshConnector)
    connector.data = host_data(target, "ax1")  # type: ignore[assignment]
    connector.host = type("Host", (), {"name": "ax1"})()  # type: ignore[assignment]
    connector._control_dir = "/tmp/cm-dir"
    expected = target.ssh_target(fleet.host("ax1")).ssh_args([("ControlPath", "/tmp/cm-dir/cm")])
    assert connector._argv("-T", "203.0.113.11", "true") == [*expected, "-T", "203.0.113.11", "true"]
    assert list(OpenSshConnector.make_names_data("ax1")) == [("ax1", {}, [])]


def test_inventory_names_use_the_openssh_connector(fleet: FleetConfig, tmp_path: Path) -> None:
    names = [name for name, _ in groups(make_target(fleet, tmp_path))["preview"]]
    assert names == ["@openssh/ax1", "@openssh/ax2"]


def test_verify_ssh_config_is_the_targets_plus_multiplexing(fleet: FleetConfig, tmp_path: Path) -> None:
    target = make_target(fleet, tmp_path)
    text = ssh_config_text(target, fleet.hosts, tmp_path / "cm")
    blocks = text.split("\n\n")
    assert blocks[0] == target.ssh_target(fleet.host("ax1")).config_block([
        ("ControlMaster", "auto"), ("ControlPersist", "60s"), ("ControlPath", f"{tmp_path}/cm/%C")]).rstrip("\n")
    assert blocks[1].startswith("Host ax2 203.0.113.12\n")
    argv = pytest_argv(fleet.hosts, tmp_path / "cfg", workers=2)
    assert "--hosts=ssh://ax1,ssh://ax2" in argv and "--sudo" in argv and argv[-2:] == ["-n", "2"]


def test_lab_targets_use_the_labs_key_and_pinned_keys(tmp_path: Path) -> None:
    settings = LabSettings(state_dir=tmp_path, prefix="wtx")
    target = settings.ssh_target(2)
    assert target == SshTarget(hostname="172.29.10.12", user="deploy", key=tmp_path / "ssh" / "id_ed25519",
                               known_hosts=tmp_path / "ssh" / "known_hosts", alias="ax2")
