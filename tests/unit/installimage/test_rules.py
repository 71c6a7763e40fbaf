"""Every rule of the installimage check, each with a config (and machine) that breaks it and the message it
gives; the configs the project renders pass them all. A rule without a case here fails the last test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fleets import make_fleet

from drape_fleet.config.reinstall import Drive
from drape_fleet.installimage.layout import layout_for, runtime_xfs_mounts
from drape_fleet.installimage.machine import Disk, Machine, parse_lsblk
from drape_fleet.installimage.problems import RULES, InvalidConfig
from drape_fleet.installimage.render import render_config
from drape_fleet.installimage.validate import check_config, require_valid

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "installimage"
BASE = (FIXTURES / "ax1-bios.conf").read_text()
AX102 = Machine("bios", parse_lsblk((FIXTURES / "lsblk-ax102.json").read_text()), image_present=True)
EXPECTED = (Drive(device="/dev/nvme0n1", size_gb=1920), Drive(device="/dev/nvme1n1", size_gb=1920))
XFS_MOUNTS = ("/var/lib/docker", "/srv/drape")


def edit(*changes: tuple[str, str]) -> str:
    text = BASE
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def disks(*specs: tuple[str, int]) -> tuple[Disk, ...]:
    return tuple(Disk(path, gb * 10**9, "disk", "nvme") for path, gb in specs)


@dataclass(frozen=True)
class Case:
    rule: str
    config: str
    message: str
    machine: Machine = AX102


CASES = [
    Case("key-shadowed", edit(("SWRAID 1\nSWRAIDLEVEL 1", "SWRAIDLEVEL 1\nSWRAID 1")),
         r"line 8 \('SWRAIDLEVEL 1'\) starts with SWRAID, so installimage reads it as SWRAID; its own line is line 9"),
    Case("key-unknown", edit(("HOSTNAME ax1", "HOSTNAM ax1")), r"line 12: installimage knows no key 'HOSTNAM'"),
    Case("key-unknown", edit(("BOOTLOADER grub", " BOOTLOADER grub")), r"line 11 is indented"),
    Case("part-line", edit(("PART /boot ext4 1G", "PART\t/boot ext4 1G")),
         r"1 line\(s\) start with PART but not 'PART '"),
    Case("unsupported", edit(("PART /boot ext4 1G", "PART /boot ext4 1G crypt")), r"btrfs volumes or encryption"),
    Case("password-prompt", edit(("HOSTNAME ax1", "HOSTNAME ax1\n# root PASSWD here")),
         r"contains 'PASSWD': installimage -c then waits for a password"),
    Case("image-missing", edit(("IMAGE /root", "# IMAGE /root")), r"IMAGE is not set"),
    Case("image-location", edit(("IMAGE /root/.oldroot/nfs/images/", "IMAGE images/")),
         r"neither an absolute path nor an http\(s\) URL"),
    Case("image-type", edit((".tar.gz", ".zip")), r"not a file type installimage unpacks"),
    Case("image-arch-unknown", edit(("-amd64-base", "-base")), r"cannot tell the architecture"),
    Case("image-arch-mismatch", edit(("-amd64-", "-arm64-")), r"the image is for arm64, the server is x86_64"),
    Case("image-present", BASE, r"the rescue system has no /root/.oldroot/nfs/images/Ubuntu-2404",
         replace(AX102, image_present=False)),
    Case("drive1-missing", edit(("DRIVE1 /dev/nvme0n1\n", "")), r"DRIVE1 is not set"),
    Case("drives-numbered", edit(("DRIVE2", "DRIVE3")), r"drives are numbered \[1, 3\]"),
    Case("drive-duplicate", edit(("DRIVE2 /dev/nvme1n1", "DRIVE2 /dev/nvme0n1")),
         r"/dev/nvme0n1 is DRIVE1 and DRIVE2"),
    Case("swraid-value", edit(("SWRAID 1\n", "SWRAID yes\n")), r"SWRAID is 'yes'"),
    Case("swraidlevel-value", edit(("SWRAIDLEVEL 1", "SWRAIDLEVEL 4")), r"SWRAIDLEVEL is '4'"),
    Case("formatdrive-with-raid", edit(("DRIVE2 /dev/nvme1n1", "DRIVE2 /dev/nvme1n1\nFORMATDRIVE2 1")),
         r"FORMATDRIVE2 is set together with SWRAID 1"),
    Case("raid-two-drives", edit(("DRIVE2 /dev/nvme1n1\n", "")), r"SWRAID 1 with 1 drive\(s\)"),
    Case("raid-level-drives", edit(("SWRAIDLEVEL 1", "SWRAIDLEVEL 5")),
         r"RAID level 5 needs 3 drives, the config has 2"),
    Case("raid-needs-boot", edit(("SWRAIDLEVEL 1", "SWRAIDLEVEL 10"), ("PART /boot ext4 1G\n", "PART / ext4 50G\n")),
         r"RAID level 10 without a /boot partition"),
    Case("bootloader", edit(("BOOTLOADER grub", "BOOTLOADER lilo")), r"BOOTLOADER is 'lilo'"),
    Case("governor", edit(("BOOTLOADER grub", "BOOTLOADER grub\nGOVERNOR turbo")), r"GOVERNOR is 'turbo'"),
    Case("hostname-empty", edit(("HOSTNAME ax1\n", "")), r"HOSTNAME is not set"),
    Case("hostname-valid", edit(("HOSTNAME ax1", "HOSTNAME ax_1")), r"HOSTNAME 'ax_1' is not a valid host name"),
    Case("partitions-none", edit(("PART /boot ext4 1G\nPART lvm vg0 all\n", "")), r"the config has no PART lines"),
    Case("part-mount", edit(("PART lvm", "PART tmp ext4 1G\nPART lvm")), r"partition 2 \(line 15\): 'tmp' is not"),
    Case("part-filesystem", edit(("PART /boot ext4", "PART /boot vfat")), r"filesystem 'vfat' is not one"),
    Case("part-none-mounted", edit(("PART lvm", "PART /data none 1G\nPART lvm")),
         r"/data has filesystem none but a mount point"),
    Case("esp-mount", edit(("PART lvm", "PART /efi esp 256M\nPART lvm")), r"EFI system partition is mounted at /efi"),
    Case("esp-size", edit(("PART lvm", "PART /boot/efi esp 100M\nPART lvm")), r"has 100 MiB, installimage wants at "
         r"least 256"),
    Case("part-all-last", edit(("PART /boot ext4 1G", "PART /boot ext4 all")), r"partition 1 \(/boot\) has size all"),
    Case("part-size", edit(("PART /boot ext4 1G", "PART /boot ext4 1X")), r"the size of /boot \('1X'\) is not"),
    Case("boot-size", edit(("PART /boot ext4 1G", "PART /boot ext4 100M")), r"/boot has 100 MiB"),
    Case("root-part-size", edit(("PART lvm", "PART / ext4 1G\nPART lvm"), ("LV vg0 root / ext4 100G\n", "")),
         r"/ has 1024 MiB, installimage wants at least 1500"),
    Case("boot-primary", edit(("PART /boot ext4 1G\n", "PART /a ext4 1G\nPART /b ext4 1G\nPART /c ext4 1G\n"
                               "PART /boot ext4 1G\n")), r"/boot is not among the first three partitions"),
    Case("boot-not-xfs", edit(("PART /boot ext4", "PART /boot xfs")), r"/boot is XFS"),
    Case("boot-not-lvm", edit(("PART /boot ext4 1G\n", ""), ("LV vg0 root", "LV vg0 boot /boot ext4 1G\nLV vg0 root")),
         r"/boot is a logical volume"),
    Case("lvm-root-or-boot", edit(("PART /boot ext4 1G\n", "")), r"with LVM, neither /boot nor / is a partition"),
    Case("vg-without-lv", "\n".join(line for line in BASE.splitlines() if not line.startswith("LV ")),
         r"a volume group is defined but no logical volumes"),
    Case("lv-without-vg", edit(("PART lvm vg0 all\n", "")), r"logical volumes are defined but no volume group"),
    Case("lv-vg-defined", edit(("LV vg0 drape", "LV vg1 drape")), r"LV drape is in volume group 'vg1'"),
    Case("lv-mount", edit(("LV vg0 drape /srv/drape", "LV vg0 drape srv")), r"LV drape: 'srv' is not a mount point"),
    Case("lv-filesystem", edit(("LV vg0 drape /srv/drape xfs", "LV vg0 drape /srv/drape zfs")),
         r"LV drape: filesystem 'zfs' is not one"),
    Case("lv-size", edit(("xfs 300G", "xfs lots")), r"LV drape: size 'lots' is not a valid size"),
    Case("lv-root-size", edit(("/ ext4 100G", "/ ext4 1G")), r"LV root \(/\) has 1024 MiB"),
    Case("lv-all-last", edit(("/ ext4 100G", "/ ext4 all")), r"LV root has size all but is not the last LV in vg0"),
    Case("vg-fits", edit(("PART lvm vg0 all", "PART lvm vg0 500G")),
         r"the logical volumes in vg0 need 1638400 MiB, the group has 512000 MiB"),
    Case("mounts-identical", edit(("LV vg0 drape /srv/drape", "LV vg0 drape /var/lib/docker")),
         r"/var/lib/docker is mounted 2 times"),
    Case("root-missing", edit(("LV vg0 root / ext4 100G\n", "")), r"nothing is mounted at /"),
    Case("runtime-xfs", edit(("/var/lib/docker xfs", "/var/lib/docker ext4")),
         r"/var/lib/docker is ext4: the runtime needs it on XFS"),
    Case("drive-missing", BASE, r"DRIVE2 /dev/nvme1n1: the server has no such disk \(it has /dev/nvme0n1",
         replace(AX102, disks=AX102.disks[:1])),
    Case("drive-ignored", edit(("DRIVE2 /dev/nvme1n1", "DRIVE2 /dev/nvme1n1\nDRIVE3 /dev/nvme2n1")),
         r"3 drives configured, installimage finds 2 \(/dev/nvme0n1, /dev/nvme1n1\) and ignores the rest"),
    Case("drive-usb", BASE, r"/dev/nvme1n1 is a USB or removable disk",
         replace(AX102, disks=(AX102.disks[0], replace(AX102.disks[1], transport="usb")))),
    Case("drive-model-size", BASE, r"the fleet file says /dev/nvme1n1 has 1920 GB, the server's is 3840 GB",
         replace(AX102, disks=disks(("/dev/nvme0n1", 1920), ("/dev/nvme1n1", 3840)))),
    Case("drive-tolerance", BASE, r"/dev/nvme1n1 \(3840 GB\) is much larger than the smallest member",
         replace(AX102, disks=disks(("/dev/nvme0n1", 1920), ("/dev/nvme1n1", 3840)))),
    Case("disks-unused", BASE, r"/dev/sda \(960 GB\) is not part of the layout",
         replace(AX102, disks=(*AX102.disks, *disks(("/dev/sda", 960))))),
    Case("esp-uefi", BASE, r"boots in UEFI mode and the config has 0 EFI system partitions",
         replace(AX102, boot_mode="uefi")),
    Case("esp-bios", (FIXTURES / "ax1-uefi.conf").read_text(), r"boots in legacy BIOS mode but the config has an EFI"),
    Case("space", edit(("xfs 1200G", "xfs 1600G")),
         r"needs 2049024 MiB \(/boot 1024 \+ / 102400 \+ /var/lib/docker 1638400 \+ /srv/drape 307200\), the "
         r"drives offer 1830396 MiB"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_names_what_is_wrong(case: Case) -> None:
    problems = [p for p in check_config(case.config, case.machine, expected=EXPECTED, xfs_mounts=XFS_MOUNTS)
                if p.rule == case.rule]
    assert problems, f"{case.rule} did not fire"
    assert any(re.search(case.message, p.message) for p in problems), [p.message for p in problems]
    assert all(p.fix and p.source == RULES[case.rule].source for p in problems)


@pytest.mark.parametrize("boot_mode", ["bios", "uefi"])
def test_the_rendered_configs_pass_every_rule(boot_mode: str) -> None:
    fleet = make_fleet()
    config = render_config(layout_for(fleet, "ax1", boot_mode))  # type: ignore[arg-type]
    machine = replace(AX102, boot_mode=boot_mode)
    assert check_config(config, machine, expected=EXPECTED, xfs_mounts=runtime_xfs_mounts(fleet)) == []
    assert check_config(config, Machine.from_settings(fleet.reinstall, boot_mode)) == []  # type: ignore[arg-type]


def test_invalid_config_lists_every_error_with_its_fix() -> None:
    config = edit(("HOSTNAME ax1\n", ""), ("PART /boot ext4 1G", "PART /boot ext4 100M"))
    with pytest.raises(InvalidConfig) as refused:
        require_valid("ax1", config, AX102)
    text = str(refused.value)
    assert text.startswith("ax1: 2 problem(s) in the installimage config")
    assert "[boot-size] /boot has 100 MiB, installimage wants at least 200. Fix: give /boot 1G (rule from " \
           "functions.sh:validate_vars)" in text
    assert "[hostname-empty]" in text


def test_warnings_do_not_stop_a_config() -> None:
    machine = replace(AX102, disks=(*AX102.disks, *disks(("/dev/sda", 960))))
    warnings = require_valid("ax1", BASE, machine)
    assert [w.rule for w in warnings] == ["disks-unused"]


def test_every_rule_has_a_case() -> None:
    assert {case.rule for case in CASES} == set(RULES)


def test_lsblk_sizes_and_flags_may_be_strings() -> None:
    old = json.dumps({"blockdevices": [{"name": "sda", "size": "960197124096", "type": "disk", "tran": "sata",
                                        "rm": "0", "model": "SSD "}, {"name": "sr0", "size": "1073741312",
                                                                     "type": "rom", "rm": "1"}]})
    assert parse_lsblk(old) == (Disk("/dev/sda", 960197124096, "disk", "sata", False, "SSD"),)
