"""How a bare server is (re)installed from Hetzner's rescue system: the fleet file's ``[reinstall]`` section.

Defaults describe a Hetzner AX102 (two 1.92 TB NVMe drives) with Ubuntu 24.04 on software RAID1 and LVM. The
logical volumes for Docker and the shared store are not repeated here: they are ``provisioning.storage``'s
volumes, so installimage creates exactly what the storage deploy later finds and keeps.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.config.base import FrozenModel, invalid

InstallSize = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[MGT]$")]
"""A size as installimage reads it: a whole number with M, G or T (MiB, GiB, TiB)."""

Md5Fingerprint = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")]
"""How Robot names an SSH key it stores: the MD5 fingerprint, e.g. 56:29:99:a4:...:10."""


class Drive(FrozenModel):
    device: Annotated[str, StringConstraints(pattern=r"^/dev/(nvme[0-9]+n[0-9]+|[hsv]d[a-z]+|xvd[a-z]+)$")]
    size_gb: Annotated[int, Field(ge=8)]
    """The drive's size as sold, in GB (10^9 bytes): an AX102's NVMe drives are 1920 GB. The rescue system's
    ``lsblk`` must report this size (within 2 %) before anything is written."""


class ReinstallTimeouts(FrozenModel):
    """How long each wait of a reinstall may take, and how often it looks. The defaults are for a real server;
    the lab's stand-in boots in seconds and sets shorter ones."""

    rescue_boot_s: Annotated[float, Field(gt=0)] = 600.0
    """A reset until the rescue system answers SSH (usually 1-3 minutes)."""
    installimage_s: Annotated[float, Field(gt=0)] = 1800.0
    """installimage's run (5-15 minutes on an AX102); past it, installimage is stopped."""
    os_boot_s: Annotated[float, Field(gt=0)] = 900.0
    """The reboot until the new system answers SSH (the first boot starts the RAID resync)."""
    command_s: Annotated[float, Field(gt=0)] = 60.0
    """One command on the rescue or the new system."""
    poll_s: Annotated[float, Field(gt=0)] = 10.0
    """Between two looks while waiting."""
    scan_s: Annotated[float, Field(gt=0)] = 5.0
    """One ssh-keyscan."""


class ReinstallSettings(FrozenModel):
    image: Annotated[str, StringConstraints(pattern=r"^(/|https?://)[A-Za-z0-9/._:@+-]+$")] = (
        "/root/.oldroot/nfs/images/Ubuntu-2404-noble-amd64-base.tar.gz")
    """The image installimage unpacks; the default is the rescue system's own copy of Ubuntu 24.04."""
    drives: Annotated[tuple[Drive, ...], Field(min_length=1)] = (
        Drive(device="/dev/nvme0n1", size_gb=1920),
        Drive(device="/dev/nvme1n1", size_gb=1920),
    )
    software_raid: bool = True
    """RAID1 across every drive (installimage ``SWRAID 1``, ``SWRAIDLEVEL 1``)."""
    boot_size: InstallSize = "1G"
    esp_size: InstallSize = "256M"
    """The EFI system partition, only on servers that boot in UEFI mode (installimage wants at least 256M)."""
    root_size: InstallSize = "100G"
    swap_size: InstallSize | None = None
    """No swap by default: previews have memory limits, and swapping turns an out-of-memory kill into a host
    that crawls for every tenant."""
    rescue_keys: tuple[Md5Fingerprint, ...] = ()
    """Fingerprints of SSH keys stored in Robot (Key management) that the rescue system (and then the new
    system's root) accepts. The MD5 fingerprints of ``provisioning.ssh.authorized_keys`` are added to them;
    `invoke fleet.robot-list --keys` lists what Robot holds."""
    timeouts: ReinstallTimeouts = ReinstallTimeouts()

    @model_validator(mode="after")
    def _drives_are_distinct(self) -> Self:
        devices = [drive.device for drive in self.drives]
        for index, device in enumerate(devices):
            if device in devices[:index]:
                raise invalid("duplicate_drive", f"{device} is listed twice", at=f"drives[{index}].device",
                              fix="list each drive once")
        if self.software_raid and len(self.drives) < 2:
            raise invalid("raid_needs_two_drives", "software RAID1 needs at least two drives", at="drives",
                          fix="list both NVMe drives, or set software_raid = false")
        return self
