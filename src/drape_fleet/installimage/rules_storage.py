"""Rules on partitions, volume groups, logical volumes and mount points (no hardware needed).

Each rule restates one check of installimage's (source named per rule) in our words. Where installimage's own
check is weaker than its intent, ours follows the intent and says so: ``vg-fits`` (installimage adds up the
wrong volumes), ``boot-not-xfs`` and ``boot-not-lvm`` (installimage only documents them in its config notes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from drape_fleet.installimage.config import ALL, ParsedConfig
from drape_fleet.installimage.problems import CREATE_CONFIG, OURS, VALIDATE_VARS, Problem, problem, rule

PART_FILESYSTEMS = ("bios_grub", "btrfs", "ext2", "ext3", "ext4", "reiserfs", "xfs", "swap", "none", "esp")
LV_FILESYSTEMS = ("btrfs", "ext2", "ext3", "ext4", "reiserfs", "xfs", "swap", "none")
PART_MOUNT = re.compile(r"^(/|none$|swap$|lvm$|btrfs\.\w+)")
LV_MOUNT = re.compile(r"^(/|swap$|none$)")
MIN_BOOT_MIB, MIN_ROOT_MIB, MIN_ESP_MIB = 200, 1500, 256


@rule("partitions-none", VALIDATE_VARS, "the config has partitions")
def partitions_none(config: ParsedConfig) -> Iterator[Problem]:
    if not config.parts:
        yield problem("partitions-none", "the config has no PART lines", "add PART /boot and PART lvm lines")


@rule("part-mount", VALIDATE_VARS, "a partition's mount point is a path, swap, none, lvm or btrfs.X")
def part_mount(config: ParsedConfig) -> Iterator[Problem]:
    for index, part in enumerate(config.parts, start=1):
        if not PART_MOUNT.match(part.mount):
            yield problem("part-mount", f"partition {index} (line {part.line}): {part.mount!r} is not a mount "
                          "point", "write an absolute path, swap, none or lvm")


@rule("part-filesystem", VALIDATE_VARS, "a partition's filesystem is one installimage makes")
def part_filesystem(config: ParsedConfig) -> Iterator[Problem]:
    for index, part in enumerate(config.parts, start=1):
        if part.mount != "lvm" and part.filesystem not in PART_FILESYSTEMS:
            yield problem("part-filesystem", f"partition {index} ({part.mount}): filesystem {part.filesystem!r} is "
                          "not one installimage makes", f"use one of {', '.join(PART_FILESYSTEMS)}")


@rule("part-none-mounted", VALIDATE_VARS, "a partition without filesystem is not mounted")
def part_none_mounted(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.filesystem == "none" and part.mount != "none":
            yield problem("part-none-mounted", f"{part.mount} has filesystem none but a mount point",
                          "give it a filesystem, or mount point none")


@rule("esp-mount", VALIDATE_VARS, "the EFI system partition is mounted at /boot/efi")
def esp_mount(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.filesystem == "esp" and part.mount != "/boot/efi":
            yield problem("esp-mount", f"the EFI system partition is mounted at {part.mount}",
                          "write PART /boot/efi esp 256M")


@rule("esp-size", VALIDATE_VARS, "the EFI system partition has a fixed size of at least 256M")
def esp_size(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.filesystem != "esp":
            continue
        if part.size == ALL:
            yield problem("esp-size", "the EFI system partition takes all the space", "give it 256M")
        elif part.size_mib is not None and part.size_mib < MIN_ESP_MIB:
            yield problem("esp-size", f"the EFI system partition has {part.size_mib} MiB, installimage wants at "
                          f"least {MIN_ESP_MIB}", "give it 256M")


@rule("part-all-last", VALIDATE_VARS, "size 'all' only on the last partition")
def part_all_last(config: ParsedConfig) -> Iterator[Problem]:
    for index, part in enumerate(config.parts[:-1], start=1):
        if part.size == ALL:
            yield problem("part-all-last", f"partition {index} ({part.mount}) has size all but is not the last",
                          "move it to the end, or give it a size")


@rule("part-size", VALIDATE_VARS, "partition sizes are numbers (with M/G/T) above zero, or all")
def part_size(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.size != ALL and not part.size_mib:
            yield problem("part-size", f"the size of {part.mount} ({part.size_text!r}) is not a valid size",
                          "write e.g. 1G, 512M or all")


@rule("boot-size", VALIDATE_VARS, "/boot has at least 200M")
def boot_size(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.mount == "/boot" and part.size_mib is not None and part.size_mib < MIN_BOOT_MIB:
            yield problem("boot-size", f"/boot has {part.size_mib} MiB, installimage wants at least {MIN_BOOT_MIB}",
                          "give /boot 1G")


@rule("root-part-size", VALIDATE_VARS, "a / partition has at least 1500M")
def root_part_size(config: ParsedConfig) -> Iterator[Problem]:
    for part in config.parts:
        if part.mount == "/" and part.size_mib is not None and part.size_mib < MIN_ROOT_MIB:
            yield problem("root-part-size", f"/ has {part.size_mib} MiB, installimage wants at least {MIN_ROOT_MIB}",
                          "give / at least 1500M")


@rule("boot-primary", VALIDATE_VARS, "with more than 3 partitions, /boot (or / without /boot) is among the first 3")
def boot_primary(config: ParsedConfig) -> Iterator[Problem]:
    if config.part_count <= 3:
        return
    mounts = [part.mount for part in config.parts]
    if "/boot" in mounts:
        if mounts.index("/boot") >= 3:
            yield problem("boot-primary", "/boot is not among the first three partitions (it must be a primary "
                          "partition)", "move PART /boot to the top")
    elif "/" in mounts[3:]:
        yield problem("boot-primary", "/ is not among the first three partitions and there is no /boot",
                      "move PART / to the top, or add PART /boot first")


@rule("boot-not-xfs", CREATE_CONFIG, "/boot is not XFS")
def boot_not_xfs(config: ParsedConfig) -> Iterator[Problem]:
    if any(part.mount == "/boot" and part.filesystem == "xfs" for part in config.parts):
        yield problem("boot-not-xfs", "/boot is XFS, which installimage's notes say it cannot be",
                      "make /boot ext4")


@rule("boot-not-lvm", CREATE_CONFIG, "/boot is not a logical volume")
def boot_not_lvm(config: ParsedConfig) -> Iterator[Problem]:
    if any(lv.mount == "/boot" for lv in config.lvs):
        yield problem("boot-not-lvm", "/boot is a logical volume, which installimage's notes say it cannot be",
                      "make /boot a partition: PART /boot ext4 1G")


@rule("lvm-root-or-boot", VALIDATE_VARS, "with LVM, /boot or / is a partition")
def lvm_root_or_boot(config: ParsedConfig) -> Iterator[Problem]:
    if config.uses_lvm and not any(part.mount in ("/boot", "/") for part in config.parts):
        yield problem("lvm-root-or-boot", "with LVM, neither /boot nor / is a partition",
                      "add PART /boot ext4 1G above the PART lvm line")


@rule("vg-without-lv", VALIDATE_VARS, "a volume group has logical volumes")
def vg_without_lv(config: ParsedConfig) -> Iterator[Problem]:
    if config.volume_groups and not config.lvs:
        yield problem("vg-without-lv", "a volume group is defined but no logical volumes", "add LV lines")


@rule("lv-without-vg", VALIDATE_VARS, "logical volumes have a volume group")
def lv_without_vg(config: ParsedConfig) -> Iterator[Problem]:
    if config.lvs and not config.volume_groups:
        yield problem("lv-without-vg", "logical volumes are defined but no volume group",
                      "add PART lvm vg0 all")


@rule("lv-vg-defined", VALIDATE_VARS, "each logical volume's group is defined")
def lv_vg_defined(config: ParsedConfig) -> Iterator[Problem]:
    groups = {part.filesystem for part in config.volume_groups}
    for lv in config.lvs:
        if config.volume_groups and lv.vg not in groups:
            yield problem("lv-vg-defined", f"LV {lv.name} is in volume group {lv.vg!r}, which no PART lvm line "
                          "defines", f"use one of {', '.join(sorted(groups))}, or add PART lvm {lv.vg} all")


@rule("lv-mount", VALIDATE_VARS, "a logical volume's mount point is a path, swap or none")
def lv_mount(config: ParsedConfig) -> Iterator[Problem]:
    for lv in config.lvs:
        if not LV_MOUNT.match(lv.mount):
            yield problem("lv-mount", f"LV {lv.name}: {lv.mount!r} is not a mount point",
                          "write an absolute path, swap or none")


@rule("lv-filesystem", VALIDATE_VARS, "a logical volume's filesystem is one installimage makes")
def lv_filesystem(config: ParsedConfig) -> Iterator[Problem]:
    for lv in config.lvs:
        if lv.filesystem not in LV_FILESYSTEMS:
            yield problem("lv-filesystem", f"LV {lv.name}: filesystem {lv.filesystem!r} is not one installimage "
                          "makes", f"use one of {', '.join(LV_FILESYSTEMS)}")


@rule("lv-size", VALIDATE_VARS, "logical volume sizes are numbers (with M/G/T) above zero, or all")
def lv_size(config: ParsedConfig) -> Iterator[Problem]:
    for lv in config.lvs:
        if lv.size != ALL and not lv.size_mib:
            yield problem("lv-size", f"LV {lv.name}: size {lv.size_text!r} is not a valid size",
                          "write e.g. 100G, or all")


@rule("lv-root-size", VALIDATE_VARS, "a / logical volume has at least 1500M")
def lv_root_size(config: ParsedConfig) -> Iterator[Problem]:
    for lv in config.lvs:
        if lv.mount == "/" and lv.size_mib is not None and lv.size_mib < MIN_ROOT_MIB:
            yield problem("lv-root-size", f"LV {lv.name} (/) has {lv.size_mib} MiB, installimage wants at least "
                          f"{MIN_ROOT_MIB}", "give / at least 1500M")


@rule("lv-all-last", VALIDATE_VARS, "size 'all' only on the last logical volume of its group")
def lv_all_last(config: ParsedConfig) -> Iterator[Problem]:
    for index, lv in enumerate(config.lvs):
        if lv.size == ALL and any(other.vg == lv.vg for other in config.lvs[index + 1:]):
            yield problem("lv-all-last", f"LV {lv.name} has size all but is not the last LV in {lv.vg}",
                          "move it to the end of its group, or give it a size")


@rule("vg-fits", VALIDATE_VARS, "a volume group of fixed size holds its logical volumes")
def vg_fits(config: ParsedConfig) -> Iterator[Problem]:
    sizes: dict[str, int | None] = {}
    for part in config.volume_groups:
        previous = sizes.get(part.filesystem, 0)
        sizes[part.filesystem] = None if previous is None or part.size_mib is None else previous + part.size_mib
    for vg, size in sizes.items():
        used = sum(lv.size_mib or 0 for lv in config.lvs if lv.vg == vg)
        if size is not None and used > size:
            yield problem("vg-fits", f"the logical volumes in {vg} need {used} MiB, the group has {size} MiB",
                          f"shrink them, or give {vg} size all")


@rule("mounts-identical", VALIDATE_VARS, "no mount point is used twice")
def mounts_identical(config: ParsedConfig) -> Iterator[Problem]:
    mounts = [p.mount for p in config.parts if p.mount not in ("lvm", "swap", "none")]
    mounts += [lv.mount for lv in config.lvs if lv.mount != "none"]
    for mount, count in Counter(mounts).items():
        if count > 1:
            yield problem("mounts-identical", f"{mount} is mounted {count} times", "keep one of them")


@rule("root-missing", VALIDATE_VARS, "there is a / (partition or logical volume)")
def root_missing(config: ParsedConfig) -> Iterator[Problem]:
    if not any(p.mount == "/" for p in config.parts) and not any(lv.mount == "/" for lv in config.lvs):
        yield problem("root-missing", "nothing is mounted at /", "add LV vg0 root / ext4 100G")


@rule("runtime-xfs", OURS, "/var/lib/docker and the shared store are XFS (disk limits, reflinks: issues 8 and 9)")
def runtime_xfs(config: ParsedConfig, xfs_mounts: tuple[str, ...]) -> Iterator[Problem]:
    filesystems = {p.mount: p.filesystem for p in config.parts} | {lv.mount: lv.filesystem for lv in config.lvs}
    for mount in xfs_mounts:
        if filesystems.get(mount) != "xfs":
            found = filesystems.get(mount)
            yield problem("runtime-xfs", f"{mount} is {found or 'not a volume of its own'}: the runtime needs it "
                          "on XFS", f"make {mount} an XFS logical volume (provisioning.storage.volumes)")
