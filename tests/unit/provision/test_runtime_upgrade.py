"""The container runtime's updates with their drain (drape_fleet.provision.maintenance): apt's simulation
parsed as it prints, and the order of the steps against a scripted host and runtime."""

from __future__ import annotations

import pytest

from drape_fleet.provision.maintenance import (
    Pending,
    UpgradeFailed,
    parse_simulation,
    upgrade_command,
    upgrade_runtime,
)

# apt-get -s install --only-upgrade docker.io containerd runc, Debian 12 with a security update pending.
SIMULATION = """\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be upgraded:
  runc
1 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.
Inst runc [1.1.5+ds1-1+deb12u1] (1.1.5+ds1-1+deb12u2 Debian-Security:12/stable-security [amd64])
Conf runc (1.1.5+ds1-1+deb12u2 Debian-Security:12/stable-security [amd64])
"""


class Host:
    """A host that answers the commands it is given from a script, and records them."""

    def __init__(self, simulation: str, *, upgrade_ok: bool = True, reboot: str = "") -> None:
        self.simulation, self.upgrade_ok, self.reboot = simulation, upgrade_ok, reboot
        self.log: list[str] = []

    def __call__(self, command: str) -> tuple[bool, str]:
        if command.startswith("dpkg-query"):
            self.log.append("installed?")
            return True, "docker.io\ncontainerd\nrunc\n"
        if "apt-get -s" in command:
            self.log.append("simulate")
            return True, self.simulation
        if "--only-upgrade" in command:
            self.log.append("upgrade")
            return self.upgrade_ok, "" if self.upgrade_ok else "E: dpkg was interrupted"
        self.log.append("reboot?")
        return True, self.reboot


def test_the_simulation_names_what_would_be_upgraded() -> None:
    assert parse_simulation(SIMULATION) == [Pending("runc", "1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1+deb12u2")]
    assert parse_simulation("0 upgraded, 0 newly installed\n") == []
    command = upgrade_command(parse_simulation(SIMULATION))
    assert command.startswith("sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade")
    assert "--force-confold runc && sudo systemctl restart docker.service" in command


def test_drain_then_upgrade_then_uncordon() -> None:
    host = Host(SIMULATION, reboot="linux-image-6.1.0-30-amd64\n")
    outcome = upgrade_runtime("ax1", ["docker.io", "containerd", "runc"], host,
                              drain=lambda h: host.log.append(f"drain {h}"),
                              uncordon=lambda h: host.log.append(f"uncordon {h}"), note=lambda _: None)
    assert host.log == ["installed?", "simulate", "drain ax1", "upgrade", "uncordon ax1", "reboot?"]
    assert [p.package for p in outcome.upgraded] == ["runc"]
    assert outcome.reboot_for == ("linux-image-6.1.0-30-amd64",)


def test_nothing_pending_touches_nothing() -> None:
    host = Host("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
    outcome = upgrade_runtime("ax1", ["runc"], host, drain=lambda h: host.log.append("drain"),
                              uncordon=lambda h: host.log.append("uncordon"), note=lambda _: None)
    assert host.log == ["installed?", "simulate"] and outcome.upgraded == ()


def test_dry_run_only_reads() -> None:
    host = Host(SIMULATION)
    outcome = upgrade_runtime("ax1", ["runc"], host, drain=lambda h: host.log.append("drain"),
                              uncordon=lambda h: host.log.append("uncordon"), note=lambda _: None, dry=True)
    assert host.log == ["installed?", "simulate"] and [p.package for p in outcome.upgraded] == ["runc"]


def test_a_failed_upgrade_leaves_the_host_cordoned_and_says_so() -> None:
    host = Host(SIMULATION, upgrade_ok=False)
    with pytest.raises(UpgradeFailed, match=r"ax1: the upgrade failed and the host stays cordoned .*"
                                            r"fleet.uncordon --host ax1.*dpkg was interrupted"):
        upgrade_runtime("ax1", ["runc"], host, drain=lambda h: host.log.append("drain"),
                        uncordon=lambda h: host.log.append("uncordon"), note=lambda _: None)
    assert host.log == ["installed?", "simulate", "drain", "upgrade"]
