"""Rules on the config's keys, image, drives, RAID, bootloader and hostname (no hardware needed).

Each rule restates one check of installimage's (source named per rule) in our words: none of its code is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from drape_fleet.installimage.config import MAX_DRIVES, NUMBERED_KEYS, SINGLE_KEYS, ParsedConfig
from drape_fleet.installimage.problems import (
    GET_OPTIONS,
    OURS,
    READ_VARS,
    VALIDATE_VARS,
    Problem,
    problem,
    rule,
)

IMAGE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz", ".tbz", ".tbz2", ".tar.bz2", ".tar.xz", ".txz", ".tar.zst")
IMAGE_ARCH = re.compile(r".*-(32|64|i386|amd64|arm64)-.*")
HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def image_arch(image: str) -> str | None:
    """The architecture installimage reads from the image's file name (``whoami``), or None."""
    match = IMAGE_ARCH.match(image.rsplit("/", 1)[-1])
    return match.group(1) if match else None


@rule("key-shadowed", READ_VARS, "each key is read from the first line starting with it (SWRAID before SWRAIDLEVEL)")
def key_shadowed(config: ParsedConfig) -> Iterator[Problem]:
    keys = [*SINGLE_KEYS, *(f"{p}{n}" for p in NUMBERED_KEYS for n in range(1, MAX_DRIVES + 1))]
    for key in keys:
        first = config.first_line_starting(key)
        intended = config.intended(key)
        if first is None or (intended is not None and intended[0] == first):
            continue
        shown = config.lines[first - 1].strip()
        own = f"; its own line is line {intended[0]}" if intended else ""
        yield problem("key-shadowed", f"line {first} ({shown!r}) starts with {key}, so installimage reads it as "
                      f"{key}{own}", f"move the {key} line above every line that starts with {key}")


@rule("key-unknown", OURS, "every line is one installimage reads (it silently ignores the others, typos included)")
def key_unknown(config: ParsedConfig) -> Iterator[Problem]:
    for number, key in config.unknown:
        if key.endswith("(indented)"):
            yield problem("key-unknown", f"line {number} is indented: installimage reads only lines that begin "
                          "with their key", "remove the leading whitespace")
        else:
            yield problem("key-unknown", f"line {number}: installimage knows no key {key!r} and would ignore "
                          "the line", "correct the key's spelling or remove the line")


@rule("part-line", READ_VARS, "partition lines start with 'PART ' (installimage counts lines starting with PART)")
def part_line(config: ParsedConfig) -> Iterator[Problem]:
    if config.part_count != len(config.parts):
        yield problem("part-line", f"{config.part_count - len(config.parts)} line(s) start with PART but not "
                      "'PART ': installimage counts them as partitions but never reads them",
                      "write 'PART <mount> <filesystem> <size>' with a space after PART")


@rule("unsupported", OURS, "no btrfs subvolumes or encryption: drape-fleet does not check or use them")
def unsupported(config: ParsedConfig) -> Iterator[Problem]:
    if any(line.startswith("SUBVOL") for line in config.lines) or any(
            p.mount.startswith("btrfs.") or p.crypt for p in config.parts) or config.value("CRYPTPASSWORD"):
        yield problem("unsupported", "the config uses btrfs volumes or encryption, which these checks do not "
                      "cover", "remove SUBVOL/btrfs.*/crypt/CRYPTPASSWORD lines")


@rule("password-prompt", GET_OPTIONS, "no 'PASSWD' anywhere: installimage would stop and ask for a password")
def password_prompt(config: ParsedConfig) -> Iterator[Problem]:
    if "PASSWD" in config.text:
        yield problem("password-prompt", "the config contains 'PASSWD': installimage -c then waits for a "
                      "password on the terminal, and an unattended run hangs", "remove the word PASSWD")


@rule("image-missing", VALIDATE_VARS, "IMAGE is set")
def image_missing(config: ParsedConfig) -> Iterator[Problem]:
    if not config.value("IMAGE"):
        yield problem("image-missing", "IMAGE is not set", "add IMAGE /root/.oldroot/nfs/images/<image>.tar.gz")


@rule("image-location", VALIDATE_VARS, "IMAGE is an absolute path or an http(s) URL")
def image_location(config: ParsedConfig) -> Iterator[Problem]:
    image = config.value("IMAGE")
    if image and not (image.startswith("/") or image.startswith(("http://", "https://"))):
        yield problem("image-location", f"IMAGE {image!r} is neither an absolute path nor an http(s) URL "
                      "(installimage would try it as an NFS path)", "give the full path in the rescue system")


@rule("image-type", VALIDATE_VARS, "IMAGE is a tar archive (tar, tgz, tbz, txz, zst)")
def image_type(config: ParsedConfig) -> Iterator[Problem]:
    image = config.value("IMAGE")
    if image and not image.endswith(IMAGE_SUFFIXES):
        yield problem("image-type", f"IMAGE {image!r} is not a file type installimage unpacks",
                      f"use an image ending in one of {', '.join(IMAGE_SUFFIXES)}")


@rule("image-arch-unknown", VALIDATE_VARS, "the image's file name says its architecture (-amd64-, -arm64-, ...)")
def image_arch_unknown(config: ParsedConfig) -> Iterator[Problem]:
    image = config.value("IMAGE")
    if image and image_arch(image) is None:
        yield problem("image-arch-unknown", f"installimage cannot tell the architecture of {image!r} from its "
                      "name", "use one of Hetzner's images, whose names carry -amd64- or -arm64-")


@rule("drive1-missing", VALIDATE_VARS, "DRIVE1 is set")
def drive1_missing(config: ParsedConfig) -> Iterator[Problem]:
    if 1 not in config.drives:
        yield problem("drive1-missing", "DRIVE1 is not set", "add DRIVE1 /dev/nvme0n1 (the first drive)")


@rule("drives-numbered", READ_VARS, "drives are numbered DRIVE1, DRIVE2, ... without gaps")
def drives_numbered(config: ParsedConfig) -> Iterator[Problem]:
    numbers = sorted(config.drives)
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        yield problem("drives-numbered", f"drives are numbered {numbers}: installimage counts them but reads "
                      "only DRIVE1..DRIVEn in order", "number them from DRIVE1 without gaps")


@rule("drive-duplicate", VALIDATE_VARS, "no drive is listed twice")
def drive_duplicate(config: ParsedConfig) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for number, device in sorted(config.drives.items()):
        if device in seen:
            yield problem("drive-duplicate", f"{device} is DRIVE{seen[device]} and DRIVE{number}",
                          "list each drive once")
        seen.setdefault(device, number)


@rule("swraid-value", VALIDATE_VARS, "SWRAID is 0 or 1")
def swraid_value(config: ParsedConfig) -> Iterator[Problem]:
    if config.swraid not in ("0", "1"):
        yield problem("swraid-value", f"SWRAID is {config.swraid!r}", "write SWRAID 1 (or 0 for no RAID)")


@rule("swraidlevel-value", VALIDATE_VARS, "SWRAIDLEVEL is 0, 1, 5, 6 or 10")
def swraidlevel_value(config: ParsedConfig) -> Iterator[Problem]:
    if config.swraid == "1" and config.swraid_level not in ("0", "1", "5", "6", "10"):
        yield problem("swraidlevel-value", f"SWRAIDLEVEL is {config.swraid_level!r}",
                      "write SWRAIDLEVEL 1 (a mirror), or 0, 5, 6, 10")


@rule("formatdrive-with-raid", VALIDATE_VARS, "FORMATDRIVEn and SWRAID are not both used")
def formatdrive_with_raid(config: ParsedConfig) -> Iterator[Problem]:
    formatted = [n for n in config.format_drives if n > 1 and n in config.drives]
    if formatted and config.swraid == "1":
        yield problem("formatdrive-with-raid", f"FORMATDRIVE{formatted[0]} is set together with SWRAID 1",
                      "drop the FORMATDRIVE lines: the RAID uses every drive")


@rule("raid-two-drives", VALIDATE_VARS, "software RAID has at least two drives")
def raid_two_drives(config: ParsedConfig) -> Iterator[Problem]:
    if config.swraid == "1" and len(config.drives) <= 1:
        yield problem("raid-two-drives", f"SWRAID 1 with {len(config.drives)} drive(s)",
                      "add DRIVE2 (or set SWRAID 0)")


@rule("raid-level-drives", VALIDATE_VARS, "enough drives for the RAID level (5: 3, 6: 4, 10: 2)")
def raid_level_drives(config: ParsedConfig) -> Iterator[Problem]:
    needed = {"5": 3, "6": 4, "10": 2}.get(config.swraid_level, 0)
    if config.swraid == "1" and len(config.drives) < needed:
        yield problem("raid-level-drives", f"RAID level {config.swraid_level} needs {needed} drives, the config "
                      f"has {len(config.drives)}", "add drives or choose SWRAIDLEVEL 1")


@rule("raid-needs-boot", VALIDATE_VARS, "RAID levels 0, 5, 6 and 10 need a /boot partition")
def raid_needs_boot(config: ParsedConfig) -> Iterator[Problem]:
    if (config.swraid == "1" and config.swraid_level in ("0", "5", "6", "10")
            and not any(p.mount == "/boot" for p in config.parts)):
        yield problem("raid-needs-boot", f"RAID level {config.swraid_level} without a /boot partition (GRUB "
                      "boots only from a mirror)", "add PART /boot ext4 1G")


@rule("bootloader", VALIDATE_VARS, "BOOTLOADER is grub")
def bootloader(config: ParsedConfig) -> Iterator[Problem]:
    value = (config.value("BOOTLOADER") or "grub").lower()
    if value != "grub":
        yield problem("bootloader", f"BOOTLOADER is {value!r}; installimage installs only grub",
                      "write BOOTLOADER grub")


@rule("governor", VALIDATE_VARS, "GOVERNOR, if set, is powersave, performance or ondemand")
def governor(config: ParsedConfig) -> Iterator[Problem]:
    value = config.value("GOVERNOR")
    if value and value.lower() not in ("powersave", "performance", "ondemand"):
        yield problem("governor", f"GOVERNOR is {value!r}", "use powersave, performance or ondemand, or drop it")


@rule("hostname-empty", VALIDATE_VARS, "HOSTNAME is set")
def hostname_empty(config: ParsedConfig) -> Iterator[Problem]:
    if not config.value("HOSTNAME"):
        yield problem("hostname-empty", "HOSTNAME is not set", "add HOSTNAME <the host's name>")


@rule("hostname-valid", OURS, "HOSTNAME is a valid host name (installimage leaves this check as a TODO)")
def hostname_valid(config: ParsedConfig) -> Iterator[Problem]:
    value = config.value("HOSTNAME")
    if value and (len(value) > 253 or not HOSTNAME.match(value)):
        yield problem("hostname-valid", f"HOSTNAME {value!r} is not a valid host name",
                      "use lowercase letters, digits, dashes and dots, e.g. ax1")
