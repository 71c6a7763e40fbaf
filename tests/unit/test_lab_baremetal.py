"""The bare-metal stand-in's pure parts: its containers per boot (exact), the lsblk report its rescue system gives,
and how a boot reads the disk (bootloader, fstab) and what of the root volume the container gets."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from drape_fleet.installimage.machine import parse_lsblk
from drape_fleet.lab import LabSettings
from drape_fleet.lab.baremetal.disk import (
    NoOperatingSystem,
    fstab_volumes,
    install_old_system,
    installed_system,
    root_archive,
    volume_directory,
)
from drape_fleet.lab.baremetal.machine import AX102_DISKS, BareMetal, lsblk_report
from drape_fleet.lab.baremetal.spec import installed_spec, rescue_spec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "installimage" / "lsblk-ax102.json"
SETTINGS = LabSettings(prefix="wtx", public_subnet="172.29.30.0/24", private_subnet="172.29.31.0/24")
MACHINE = BareMetal(name="ax10", robot_server_number=2100010)


def test_the_machine_sits_after_every_address_a_lab_host_can_have() -> None:
    assert str(MACHINE.public_address(SETTINGS)) == "172.29.30.20"
    assert str(MACHINE.private_address(SETTINGS)) == "172.29.31.20"
    last_lab_host = LabSettings(hosts=9, public_subnet="172.29.30.0/24", private_subnet="172.29.31.0/24")
    assert str(last_lab_host.public_address(9)) == "172.29.30.19"
    with pytest.raises(ValueError, match="greater than or equal to 10"):
        BareMetal(name="ax3", index=3, robot_server_number=1)


def test_the_rescue_system_is_the_lab_host_recipe_with_the_disk_the_source_and_the_firmware() -> None:
    body = rescue_spec(SETTINGS, MACHINE, "drape-lab/rescue:bookworm", source=Path("/src"),
                       firmware=Path("/m/firmware/uefi"), records=Path("/m/installimage"), generation=3)
    assert body["Image"] == "drape-lab/rescue:bookworm" and body["Hostname"] == "rescue"
    assert body["Cmd"] == ["/sbin/init"] and body["HostConfig"]["CapDrop"] == ["SYS_RESOURCE"]
    assert body["HostConfig"]["Binds"] == ["wtx-ax10-disk:/mnt/disk:rw", "/src:/opt/drape-fleet/src:ro",
                                           "/m/firmware/uefi:/sys/firmware:ro",
                                           "/m/installimage:/var/log/drape-installimage:rw",
                                           "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"wtx-public": {"IPAMConfig": {
        "IPv4Address": "172.29.30.20"}}}}
    assert body["Labels"] == {"drape.lab": "wtx", "drape.lab.baremetal": "ax10", "drape.lab.boot": "rescue",
                              "drape.lab.generation": "3"}  # no drape.lab.host: lab.up leaves it alone


def test_the_installed_system_gets_its_volumes_where_its_fstab_mounts_them() -> None:
    body = installed_spec(SETTINGS, MACHINE, "drape-lab/host:bookworm", hostname="ax10", generation=4,
                          volumes=[(Path("/d/lv/vg0/docker"), "/var/lib/docker"), (Path("/d/lv/vg0/drape"),
                                                                                   "/srv/drape")])
    assert body["Image"] == "drape-lab/host:bookworm" and body["Hostname"] == "ax10"
    assert body["HostConfig"]["Binds"] == ["/d/lv/vg0/docker:/var/lib/docker:rw", "/d/lv/vg0/drape:/srv/drape:rw",
                                           "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    assert body["Labels"]["drape.lab.boot"] == "disk"


def test_the_rescue_systems_lsblk_reads_like_the_one_in_the_fixture() -> None:
    assert parse_lsblk(lsblk_report(AX102_DISKS)) == parse_lsblk(FIXTURE.read_text())
    assert json.loads(lsblk_report(AX102_DISKS)) == json.loads(FIXTURE.read_text())


def test_a_boot_reads_the_bootloader_then_the_root_volumes_fstab(tmp_path: Path) -> None:
    with pytest.raises(NoOperatingSystem, match="no bootloader"):
        installed_system(tmp_path)
    install_old_system(tmp_path, hostname="old-ax10")
    system = installed_system(tmp_path)
    assert system.root == tmp_path / "lv" / "vg0" / "root" and system.hostname == "old-ax10"
    assert system.volumes == ((tmp_path / "lv/vg0/docker", "/var/lib/docker"),
                              (tmp_path / "lv/vg0/drape", "/srv/drape"))
    (tmp_path / "bootloader").write_text("/dev/md/0\n")
    with pytest.raises(NoOperatingSystem, match="holds no system"):
        installed_system(tmp_path)


def test_only_logical_volumes_other_than_root_are_mounted_from_fstab() -> None:
    fstab = ("proc /proc proc defaults 0 0\n/dev/md/0 /boot ext4 defaults 0 0\n/dev/vg0/root / ext4 defaults 0 0\n"
             "/dev/vg0/swap none swap sw 0 0\n/dev/vg0/docker /var/lib/docker xfs defaults,prjquota 0 0\n"
             "# /dev/vg0/old /old ext4 defaults 0 0\n")
    assert fstab_volumes(fstab, Path("/d")) == ((Path("/d/lv/vg0/docker"), "/var/lib/docker"),)
    assert volume_directory(Path("/d"), "/dev/mapper/vg0-root") is None


def test_the_container_gets_the_root_volume_but_not_its_fstab_or_hostname(tmp_path: Path) -> None:
    install_old_system(tmp_path, hostname="old-ax10")
    with tarfile.open(fileobj=io.BytesIO(root_archive(tmp_path / "lv/vg0/root"))) as archive:
        members = {member.name: member for member in archive.getmembers()}
    assert "etc/fstab" not in members and "etc/hostname" not in members
    assert members["etc/ssh/ssh_host_ed25519_key"].mode == 0o600
    assert members["etc/ssh/ssh_host_ed25519_key.pub"].isfile()
