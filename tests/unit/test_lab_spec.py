"""The lab's pure builders and settings: exact specs, and bad input refused before anything runs."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest
from pydantic import ValidationError

from drape_fleet.lab import LabSettings
from drape_fleet.lab.fleet import lab_fleet, lab_fleet_data
from drape_fleet.lab.spec import host_container_spec, network_spec


def test_host_container_spec_is_the_systemd_recipe() -> None:
    settings = LabSettings(hosts=3)
    body = host_container_spec(settings, 2, "drape-lab/host:bookworm")
    host_config = body["HostConfig"]
    assert body["Image"] == "drape-lab/host:bookworm"
    assert body["Cmd"] == ["/sbin/init"]
    assert body["Hostname"] == "ax2"
    assert body["StopSignal"] == "SIGRTMIN+3"
    assert host_config["CapAdd"] == ["ALL"] and host_config["CapDrop"] == ["SYS_RESOURCE"]
    assert "Privileged" not in host_config  # refused on this machine kind
    assert host_config["MaskedPaths"] == [] and host_config["ReadonlyPaths"] == []
    assert host_config["CgroupnsMode"] == "host"
    assert host_config["Binds"] == [  # one XFS data disk (drape_fleet.lab.disks) for Docker and the store
        "/var/lib/drape-lab/disks/drape-lab-ax2/docker:/var/lib/docker:rw",
        "/var/lib/drape-lab/disks/drape-lab-ax2/srv:/srv/drape:rw",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    ]
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {"drape-lab-public": {"IPAMConfig": {"IPv4Address": "172.29.10.12"}}}}
    assert body["Labels"]["drape.lab"] == "drape-lab"
    assert body["Labels"]["drape.lab.host"] == "ax2"


def test_spec_digest_changes_with_the_recipe() -> None:
    settings = LabSettings()
    a = host_container_spec(settings, 1, "img:a")["Labels"]["drape.lab.spec"]
    b = host_container_spec(settings, 1, "img:b")["Labels"]["drape.lab.spec"]
    assert a != b
    assert a == host_container_spec(settings, 1, "img:a")["Labels"]["drape.lab.spec"]


def test_network_spec() -> None:
    settings = LabSettings(private_subnet=IPv4Network("10.213.20.0/24"))
    assert network_spec(settings, "private") == {
        "name": "drape-lab-private",
        "driver": "bridge",
        "ipam": {"Driver": "default", "Config": [{"Subnet": "10.213.20.0/24", "Gateway": "10.213.20.1"}]},
        "labels": {"drape.lab": "drape-lab", "drape.lab.network": "private"},
    }


def test_lab_fleet_is_a_valid_fleet_with_fixed_addresses() -> None:
    fleet = lab_fleet(LabSettings(hosts=3))
    assert fleet.environment.name == "lab"
    assert [str(h.public_address) for h in fleet.hosts] == ["172.29.10.11", "172.29.10.12", "172.29.10.13"]
    assert [str(h.private_address) for h in fleet.hosts] == ["172.29.20.11", "172.29.20.12", "172.29.20.13"]
    assert [str(n) for n in fleet.network.admin_allowlist] == ["172.29.10.1/32"]
    # This machine (the backend's stand-in) and every host (each runs the runtime service, docs/service.md).
    assert [str(n) for n in fleet.network.backend_addresses] == ["172.29.20.1/32", "172.29.20.11/32", "172.29.20.12/32",
                                                              "172.29.20.13/32"]
    assert lab_fleet_data(LabSettings(hosts=1))["hosts"][0]["name"] == "ax1"


@pytest.mark.parametrize("hosts", [0, -1, 10, 1000])
def test_absurd_host_counts_are_refused(hosts: int) -> None:
    with pytest.raises(ValidationError, match="hosts"):
        LabSettings(hosts=hosts)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("public_subnet", "8.8.8.0/24", "not a private range"),
    ("private_subnet", "172.29.10.0/25", "overlap"),
    ("public_subnet", "172.29.10.0/29", "no room"),
])
def test_bad_subnets_are_refused(field: str, value: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        LabSettings.model_validate({field: value})


@pytest.mark.parametrize("prefix", ["", "Drape", "drape lab", "x" * 30])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValidationError):
        LabSettings(prefix=prefix)


def test_lab_disks_are_found_by_their_own_lab_prefix_only(tmp_path: Path) -> None:
    from drape_fleet.lab.disks import lab_disks, mkfs_argv

    for name in ("wtf-ax1.img", "wtf-ax12.img", "wtf2-ax1.img", "wtf-x-ax1.img", "wtf-ax1.img.tmp", "wtf-git.img"):
        (tmp_path / name).touch()
    found = lab_disks(LabSettings(prefix="wtf"), root=tmp_path)
    assert [(d.host, d.image.name, d.mountpoint.name) for d in found] == [
        ("ax1", "wtf-ax1.img", "wtf-ax1"), ("ax12", "wtf-ax12.img", "wtf-ax12")]
    assert found[0].binds() == {tmp_path / "wtf-ax1" / "docker": "/var/lib/docker",
                                tmp_path / "wtf-ax1" / "srv": "/srv/drape"}
    assert mkfs_argv("/dev/loop3", "drape-lab-ax1") == [
        "mkfs.xfs", "-q", "-m", "reflink=1", "-n", "ftype=1", "-L", "drape-lab-ax", "/dev/loop3"]


def test_lab_up_waits_for_booting_hosts_but_not_for_refused_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted machine boots the lab's existing hosts again: their sshd refuses for a few seconds. lab.up
    waits that out; a host that refuses the key is reported at once (waiting would not mend it)."""
    from drape_fleet import shell
    from drape_fleet.lab import up

    answers = {"172.29.10.11": ["Connection refused", "Connection refused", ""],
               "172.29.10.12": ["Permission denied (publickey).", ""]}
    calls: dict[str, int] = {}

    def fake_ssh_run(target, command, **_kw):  # type: ignore[no-untyped-def]
        calls[target.hostname] = calls.get(target.hostname, 0) + 1
        stderr = answers[target.hostname].pop(0)
        return shell.Result(255 if stderr else 0, "", stderr)

    monkeypatch.setattr(up, "ssh_run", fake_ssh_run)
    monkeypatch.setattr(up.time, "sleep", lambda _s: None)
    problems = up._ssh_problems(LabSettings(hosts=2), wait_s=30)
    assert problems == ["", "172.29.10.12: Permission denied (publickey)."]
    assert calls == {"172.29.10.11": 3, "172.29.10.12": 1}

    answers["172.29.10.11"] = ["Connection refused"] * 5
    answers["172.29.10.12"] = [""]
    problems = up._ssh_problems(LabSettings(hosts=2), wait_s=0)  # the deadline passed: reported, not waited
    assert problems == ["172.29.10.11: Connection refused", ""]
