"""Config validation, distro profiles, small builders, and the verify suite's independence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from provision_testdata import make_fleet
from pydantic import ValidationError

from drape_fleet.config import ConfigError, FleetConfig
from drape_fleet.config.provisioning import BaseSystemSettings, DockerSettings
from drape_fleet.facts.nftables import NftTables
from drape_fleet.facts.system import OsRelease, SshClientAddress
from drape_fleet.provision import base, cache
from drape_fleet.provision.distro import UnsupportedDistro, distro_id, load_profile, profile_for, supported

ROOT = Path(__file__).resolve().parents[3]


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match=r"overlaps the lab range"):
        DockerSettings(address_pool="172.29.128.0/17")
    with pytest.raises(ValidationError, match=r"nofile_soft is above nofile_hard"):
        DockerSettings(nofile_soft=30000, nofile_hard=20000)
    with pytest.raises(ValidationError, match=r"would hit working hours"):
        BaseSystemSettings(automatic_reboot=True, reboot_time="14:00")
    with pytest.raises(ConfigError, match=r"provisioning.docker.source: 'podman' is not allowed"):
        make_fleet(provisioning={"docker": {"source": "podman"}})


def test_distro_profiles() -> None:
    assert supported() == ("debian-12", "ubuntu-22.04", "ubuntu-24.04")
    assert load_profile("ubuntu-24.04").ssh.socket == "ssh.socket"
    assert load_profile("ubuntu-22.04").ssh.socket is None
    assert load_profile("debian-12").lab_proven and not load_profile("ubuntu-24.04").lab_proven
    os_release = OsRelease().process(['PRETTY_NAME="Ubuntu 24.04.1 LTS"', "ID=ubuntu", 'VERSION_ID="24.04"'])
    assert distro_id(os_release) == "ubuntu-24.04" and profile_for(os_release).codename == "noble"
    with pytest.raises(UnsupportedDistro, match=r"no profile for 'rocky-9': supported are debian-12, ubuntu-22.04"):
        load_profile("rocky-9")


def test_small_facts() -> None:
    assert SshClientAddress().process(["172.29.30.1 51234 172.29.30.11 22"]) == "172.29.30.1"
    assert SshClientAddress().process([""]) is None
    assert NftTables().process(["table ip nat", "table inet drape_filter"]) == ["ip nat", "inet drape_filter"]


def test_lab_fleet_is_valid_with_its_provisioning_values() -> None:
    from drape_fleet.lab.fleet import lab_fleet
    from drape_fleet.lab.settings import LabSettings

    fleet = lab_fleet(LabSettings())
    assert fleet.provisioning.docker.source == "distro"
    assert fleet.provisioning.docker.nofile_hard <= 20000
    assert not fleet.provisioning.storage.expect_raid


def test_sysctls_per_environment(fleet: FleetConfig, lab_like: FleetConfig) -> None:
    production, lab = base.sysctls(fleet), base.sysctls(lab_like)
    assert production["kernel.kptr_restrict"] == 2 and production["net.core.netdev_max_backlog"] == 16384
    assert not any(k.startswith("kernel.") or k == "net.core.netdev_max_backlog" for k in lab)
    assert "fs.file-max" not in lab
    assert base.sysctl_file({"b": 2, "a": 1}) == "# Managed by drape-fleet (deploys/base.py).\na = 1\nb = 2\n"


def test_unattended_upgrades_security_only_no_reboot(fleet: FleetConfig) -> None:
    text = base.unattended_upgrades_conf(fleet, load_profile("debian-12"))
    assert '"origin=Debian,codename=${distro_codename}-security,label=Debian-Security";' in text
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in text


def test_cache_contract(fleet: FleetConfig) -> None:
    conf = cache.store_conf(fleet.provisioning.cache)
    assert conf.splitlines()[1:] == ["STORE=/srv/drape/pnpm-store", "OWNER=drape-cache", "UID=10100",
                                     f"MAX_BYTES={200 * 1024**3}"]
    assert 'if [ "$used" -gt "$MAX_BYTES" ]; then' in cache.guard_script()


def test_host_suite_reads_hosts_not_our_templates() -> None:
    """tests/host must not import the deploys or their builders: it checks the host independently."""
    forbidden = re.compile(r"^\s*(from|import)\s+(drape_fleet\.(provision|facts|hetzner)|deploys)\b", re.M)
    offenders = [p.name for p in (ROOT / "tests" / "host").glob("*.py") if forbidden.search(p.read_text())]
    assert offenders == []
