"""The disk layout of a host, from the fleet file: what the installimage config says, as data.

Both drives in one RAID1 (``SWRAID 1``, ``SWRAIDLEVEL 1``); ``/boot`` as a partition (installimage refuses
``/boot`` on LVM and on XFS), an EFI system partition only when the server boots in UEFI mode, and the rest one
LVM volume group holding root, optional swap and ``provisioning.storage``'s volumes (``/var/lib/docker`` and
``/srv/drape`` by default) at their sizes. Space left in the volume group stays free for growth and snapshots.

The runtime needs two of those volumes on XFS (issues 8 and 9): ``/var/lib/docker``, so every preview's
writable layer gets a disk limit (overlay2's size option needs XFS project quotas), and the volume that holds
the shared pnpm store, whose files previews clone with reflinks. mkfs.xfs makes reflink=1 filesystems by
default since xfsprogs 5.1 (the rescue system's is newer, and the flow checks it on the installed system);
project quotas are a mount option, which a post-install script writes into the new system's fstab.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.models import FleetConfig
from drape_fleet.installimage.machine import BootMode

QUOTA_MOUNT_OPTIONS = "defaults,noatime,prjquota"
DOCKER_MOUNT = "/var/lib/docker"
RESERVED_VOLUME_NAMES = ("root", "swap")


class LayoutError(ValueError):
    """The fleet file asks for a layout this project cannot use; the message names the field and the fix."""


@dataclass(frozen=True)
class Partition:
    mount: str
    filesystem: str
    """A filesystem, or the volume group's name when ``mount`` is ``lvm``."""
    size: str


@dataclass(frozen=True)
class Volume:
    vg: str
    name: str
    mount: str
    filesystem: str
    size: str


@dataclass(frozen=True)
class InstallLayout:
    hostname: str
    boot_mode: BootMode
    drives: tuple[str, ...]
    software_raid: bool
    partitions: tuple[Partition, ...]
    volumes: tuple[Volume, ...]
    image: str
    quota_mounts: tuple[str, ...]
    """XFS volumes mounted with project quotas (``QUOTA_MOUNT_OPTIONS``) on the installed system."""

    @property
    def raid_level(self) -> int:
        return 1

    @property
    def xfs_mounts(self) -> tuple[str, ...]:
        return tuple(volume.mount for volume in self.volumes if volume.filesystem == "xfs")


def runtime_xfs_mounts(fleet: FleetConfig) -> tuple[str, ...]:
    """The mounts that must be XFS: /var/lib/docker and the volume holding the shared store (the store's own
    path when no volume holds it, which the layout then refuses)."""
    storage = fleet.provisioning.storage
    store = fleet.provisioning.cache.store_path
    holders = [v for v in storage.volumes if store == v.mount or store.startswith(v.mount.rstrip("/") + "/")]
    mounts = [DOCKER_MOUNT, max(holders, key=lambda v: len(v.mount)).mount if holders else store]
    return tuple(dict.fromkeys(mounts))


def layout_for(fleet: FleetConfig, host_name: str, boot_mode: BootMode) -> InstallLayout:
    host = fleet.host(host_name)
    settings = fleet.reinstall
    storage = fleet.provisioning.storage
    _check_volumes(fleet)
    partitions = [Partition("/boot", "ext4", settings.boot_size)]
    if boot_mode == "uefi":
        partitions.append(Partition("/boot/efi", "esp", settings.esp_size))
    partitions.append(Partition("lvm", storage.volume_group, "all"))
    volumes = [Volume(storage.volume_group, "root", "/", "ext4", settings.root_size)]
    if settings.swap_size:
        volumes.append(Volume(storage.volume_group, "swap", "swap", "swap", settings.swap_size))
    volumes += [Volume(storage.volume_group, v.name, v.mount, v.filesystem, v.size) for v in storage.volumes]
    return InstallLayout(
        hostname=host.name, boot_mode=boot_mode, drives=tuple(d.device for d in settings.drives),
        software_raid=settings.software_raid, partitions=tuple(partitions), volumes=tuple(volumes),
        image=settings.image, quota_mounts=runtime_xfs_mounts(fleet),
    )


def _check_volumes(fleet: FleetConfig) -> None:
    storage = fleet.provisioning.storage
    problems = []
    by_mount = {volume.mount: (index, volume) for index, volume in enumerate(storage.volumes)}
    for mount in runtime_xfs_mounts(fleet):
        if mount not in by_mount:
            what = "Docker's data" if mount == DOCKER_MOUNT else f"the shared store ({mount})"
            problems.append(f"provisioning.storage.volumes: no volume is mounted at {mount} for {what}. Fix: add "
                            f'{{ name = "...", mount = "{mount}", size = "...", filesystem = "xfs" }}')
            continue
        index, volume = by_mount[mount]
        if volume.filesystem != "xfs":
            problems.append(
                f"provisioning.storage.volumes[{index}] ({volume.name}, {mount}) is {volume.filesystem}: the "
                "runtime's per-preview disk limits need XFS with project quotas and the shared store needs "
                'reflinks. Fix: filesystem = "xfs"')
    for index, volume in enumerate(storage.volumes):
        if volume.name in RESERVED_VOLUME_NAMES:
            problems.append(f"provisioning.storage.volumes[{index}] is named {volume.name!r}, which the layout "
                            "uses for the system itself. Fix: rename it")
    if problems:
        raise LayoutError("the disk layout cannot be built:\n  - " + "\n  - ".join(problems))
