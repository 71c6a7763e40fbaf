"""The machine installimage will run on, as the rescue system reports it: boot mode, CPU architecture and disks.

Boot mode: the rescue system boots the way the server's firmware is set, so ``/sys/firmware/efi`` existing in the
rescue system means UEFI, exactly the test installimage itself makes (functions.sh, top level: ``UEFI=1``).
Hetzner's dedicated servers (the AX102 among them) have booted in legacy BIOS mode unless UEFI was enabled on
request, and newer models may be UEFI-only, so the layout is chosen from what the rescue system sees, never
assumed. Disks come from ``lsblk -J -b -d`` (whole disks, sizes in bytes).

Before the rescue system is up, ``from_settings`` describes the machine the fleet file promises, so a layout
can be checked in a dry run and before anything is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from drape_fleet.config.reinstall import ReinstallSettings

BootMode = Literal["bios", "uefi"]
BOOT_MODES: tuple[BootMode, ...] = ("bios", "uefi")

BOOT_MODE_COMMAND = "if [ -d /sys/firmware/efi ]; then echo uefi; else echo bios; fi"
LSBLK_COMMAND = "lsblk -J -b -d -o NAME,PATH,SIZE,TYPE,TRAN,RM,MODEL"
ARCH_COMMAND = "uname -m"


class MachineReportError(ValueError):
    """The rescue system's answer could not be read."""


@dataclass(frozen=True)
class Disk:
    path: str
    size_bytes: int
    type: str = "disk"
    transport: str = ""
    removable: bool = False
    model: str = ""

    @property
    def size_mib(self) -> int:
        return self.size_bytes // 1024 // 1024

    def describe(self) -> str:
        return f"{self.path} ({self.size_bytes / 1e9:.0f} GB{', ' + self.model if self.model else ''})"


@dataclass(frozen=True)
class Machine:
    boot_mode: BootMode
    disks: tuple[Disk, ...]
    arch: str = "x86_64"
    image_present: bool | None = None
    """Whether the configured image exists in the rescue system (None: not known yet)."""
    seen: bool = True
    """False when this is the fleet file's promise rather than what a rescue system reported."""

    def disk(self, path: str) -> Disk | None:
        return next((disk for disk in self.disks if disk.path == path), None)

    @classmethod
    def from_settings(cls, settings: ReinstallSettings, boot_mode: BootMode) -> Machine:
        return cls(boot_mode, tuple(Disk(d.device, d.size_gb * 10**9) for d in settings.drives), seen=False)


def parse_boot_mode(output: str) -> BootMode:
    value = output.strip()
    if value in ("bios", "uefi"):
        return value  # type: ignore[return-value]
    raise MachineReportError(f"the boot-mode check printed {value[:80]!r}, expected 'bios' or 'uefi'")


def parse_lsblk(output: str) -> tuple[Disk, ...]:
    """Whole disks from ``lsblk -J -b -d -o NAME,PATH,SIZE,TYPE,TRAN,RM,MODEL``. Sizes and flags are numbers
    or strings depending on util-linux's version: both are read."""
    try:
        devices = json.loads(output)["blockdevices"]
    except (ValueError, KeyError, TypeError):
        raise MachineReportError(f"lsblk did not print its JSON report: {output.strip()[:120]!r}") from None
    disks = []
    for device in devices:
        kind = str(device.get("type") or "")
        if kind not in ("disk",):
            continue
        path = device.get("path") or f"/dev/{device['name']}"
        disks.append(Disk(str(path), int(device.get("size") or 0), kind, str(device.get("tran") or ""),
                          str(device.get("rm")).lower() in ("1", "true"), str(device.get("model") or "").strip()))
    return tuple(disks)
