"""Rules that need the machine: the disks and boot mode the rescue system reports (or, before it is up, the ones
the fleet file promises), and the space the layout needs on them.

``space`` redoes installimage's own arithmetic (read_vars and validate_vars): usable space is the smallest RAID
member (times the data disks of the RAID level), less 1024 MiB for each partition of size ``all``; needed
space is every fixed partition plus every logical volume in a volume group of size ``all``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from drape_fleet.config.reinstall import Drive
from drape_fleet.installimage.config import ALL, ParsedConfig
from drape_fleet.installimage.machine import Disk, Machine
from drape_fleet.installimage.problems import GETDRIVES, OURS, VALIDATE_VARS, Problem, problem, rule
from drape_fleet.installimage.rules_keys import image_arch

HDD_MIN_BYTES = 7_000_000 * 1024
"""getdrives ignores disks smaller than HDDMINSIZE (7000000 KiB) when there are several."""
INSTALLABLE = re.compile(r"^/dev/(nvme[0-9]+n[0-9]+|[hvs]d[a-z]|xvd[a-z])$")
ARCHES = {"x86_64": ("32", "64", "i386", "amd64"), "aarch64": ("arm64",), "arm64": ("arm64",)}
SIZE_TOLERANCE = 0.02


def installable_disks(machine: Machine) -> list[Disk]:
    disks = [disk for disk in machine.disks if INSTALLABLE.match(disk.path)]
    return disks if len(disks) <= 1 else [disk for disk in disks if disk.size_bytes >= HDD_MIN_BYTES]


@rule("image-arch-mismatch", VALIDATE_VARS, "the image's architecture matches the server's")
def image_arch_mismatch(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    arch = image_arch(config.value("IMAGE"))
    if arch is not None and arch not in ARCHES.get(machine.arch, (arch,)):
        yield problem("image-arch-mismatch", f"the image is for {arch}, the server is {machine.arch}",
                      "use the image built for the server's architecture")


@rule("image-present", OURS, "the image exists in the rescue system")
def image_present(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    if machine.image_present is False:
        yield problem("image-present", f"the rescue system has no {config.value('IMAGE')}",
                      "list /root/.oldroot/nfs/images/ in the rescue system and set reinstall.image to one of them")


@rule("drive-missing", VALIDATE_VARS, "every DRIVEn is a disk the server has")
def drive_missing(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    present = ", ".join(disk.describe() for disk in machine.disks) or "none"
    for number, device in sorted(config.drives.items()):
        if machine.disk(device) is None:
            yield problem("drive-missing", f"DRIVE{number} {device}: the server has no such disk (it has "
                          f"{present})", "set reinstall.drives to the disks lsblk shows")


@rule("drive-ignored", GETDRIVES, "no more DRIVEn lines than disks installimage finds")
def drive_ignored(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    found = installable_disks(machine)
    if len(config.drives) > len(found):
        yield problem("drive-ignored", f"{len(config.drives)} drives configured, installimage finds "
                      f"{len(found)} ({', '.join(d.path for d in found) or 'none'}) and ignores the rest",
                      "list only the server's disks")


@rule("drive-usb", VALIDATE_VARS, "no drive is a USB or removable disk (installimage only notes it)")
def drive_usb(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    for device in config.drives.values():
        disk = machine.disk(device)
        if disk is not None and (disk.transport == "usb" or disk.removable):
            yield problem("drive-usb", f"{device} is a USB or removable disk", "install on the internal drives")


@rule("drive-model-size", OURS, "each drive has the size the fleet file says (within 2 %)")
def drive_model_size(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    if not machine.seen:
        return
    for drive in expected:
        disk = machine.disk(drive.device)
        wanted = drive.size_gb * 10**9
        if disk is not None and abs(disk.size_bytes - wanted) > wanted * SIZE_TOLERANCE:
            yield problem("drive-model-size", f"the fleet file says {drive.device} has {drive.size_gb} GB, the "
                          f"server's is {disk.size_bytes / 1e9:.0f} GB", "check this is the right server, then "
                          "set reinstall.drives to its real sizes")


@rule("drive-tolerance", VALIDATE_VARS, "RAID members differ in size by at most 35 % (else space is lost)")
def drive_tolerance(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    disks = [d for d in (machine.disk(device) for device in config.drives.values()) if d is not None]
    if config.swraid == "1" and disks:
        smallest = min(disk.size_bytes for disk in disks)
        for disk in disks:
            if disk.size_bytes > smallest * 135 // 100:
                yield problem("drive-tolerance", f"{disk.describe()} is much larger than the smallest member: the "
                              "RAID uses only the smallest size", "pair drives of the same size", "warning")


@rule("disks-unused", OURS, "disks the layout leaves out are named (they are not touched)")
def disks_unused(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    used = set(config.drives.values())
    for disk in installable_disks(machine):
        if disk.path not in used:
            yield problem("disks-unused", f"{disk.describe()} is not part of the layout and stays as it is",
                          "add it to reinstall.drives if it should be used", "warning")


@rule("esp-uefi", VALIDATE_VARS, "a UEFI server gets exactly one EFI system partition line")
def esp_uefi(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    count = sum(1 for part in config.parts if part.filesystem == "esp")
    if machine.boot_mode == "uefi" and count != 1:
        yield problem("esp-uefi", f"the server boots in UEFI mode and the config has {count} EFI system "
                      "partitions", "add exactly one PART /boot/efi esp 256M")


@rule("esp-bios", OURS, "a legacy-BIOS server gets no EFI system partition (installimage only notes it)")
def esp_bios(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    if machine.boot_mode == "bios" and any(part.filesystem == "esp" for part in config.parts):
        yield problem("esp-bios", "the server boots in legacy BIOS mode but the config has an EFI system "
                      "partition: the layout was made for another boot mode", "render the layout for bios")


@rule("space", VALIDATE_VARS, "the partitions and volumes fit on the drives")
def space(config: ParsedConfig, machine: Machine, expected: Sequence[Drive]) -> Iterator[Problem]:
    usable, needed, detail = space_plan(config, machine)
    if usable is not None and needed > usable:
        yield problem("space", f"the layout needs {needed} MiB ({detail}), the drives offer {usable} MiB",
                      f"shrink the volumes by {needed - usable} MiB (reinstall.root_size, "
                      "provisioning.storage.volumes)")


def space_plan(config: ParsedConfig, machine: Machine) -> tuple[int | None, int, str]:
    """(usable MiB or None if a drive is unknown, needed MiB, what the need is made of), as installimage
    computes them."""
    disks = [machine.disk(device) for _, device in sorted(config.drives.items())]
    if not disks or any(disk is None for disk in disks):
        return None, 0, ""
    sizes = [disk.size_bytes for disk in disks if disk is not None]
    count, raid, level = len(sizes), config.swraid == "1", config.swraid_level
    data_disks = {"0": count, "5": count - 1, "6": count - 2, "10": count // 2}.get(level, 1) if raid else 1
    usable = (min(sizes) if raid else sizes[0]) * max(data_disks, 1) // 1024 // 1024
    usable -= 1024 * sum(1 for part in config.parts if part.size == ALL)
    needed, items = 0, []
    for part in config.parts:
        size = part.size_mib
        if size is None:
            continue
        if raid and (part.mount not in ("/boot", "/boot/efi", "swap") or level == "0"):
            size //= max(data_disks, 1)
        needed += size
        items.append(f"{part.mount} {size}")
    whole_groups = {part.filesystem for part in config.volume_groups if part.size == ALL}
    for lv in config.lvs:
        if lv.size_mib and lv.vg in whole_groups:
            needed += lv.size_mib
            items.append(f"{lv.mount} {lv.size_mib}")
    return usable, needed, " + ".join(items)
