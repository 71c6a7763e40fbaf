"""Each lab host's data disk: XFS with reflink on a loop device, as a production host's data volume is.

A production host keeps Docker's data and the shared pnpm store on one XFS filesystem (reflink), so a preview's
workspace can clone the store's files instead of copying them (docs/previews.md). A lab host gets the same: a
sparse file on this machine (``/var/lib/drape-lab/disks/<prefix>-<host>.img``, ``host_disk_gib`` large, using only
what is written), attached to a loop device, formatted ``mkfs.xfs -m reflink=1`` and mounted on this machine at
``/var/lib/drape-lab/disks/<prefix>-<host>/``. Its ``docker/`` directory is the host's ``/var/lib/docker`` and its
``srv/`` directory the host's ``/srv/drape``: one filesystem for both, as the production storage plan asks.

What the lab cannot have: this kernel has no XFS quota support (``prjquota`` mounts fail), so the per-preview
disk limits stay off in the lab. Loop devices and mounts do not survive a reboot of this machine: ``lab.up``
attaches and mounts again (never formats a disk that holds a filesystem).

Disks are found by their names (``<prefix>-ax<N>.img``), not by a record in the lab's state directory: a lab whose
state directory was lost still gets its disks removed by ``lab.down``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from drape_fleet import shell
from drape_fleet.console import Log
from drape_fleet.lab.engine import ENGINE_ROOT, ensure_tools
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings

DISKS_DIR = ENGINE_ROOT / "disks"
DOCKER_DIR = "docker"
SRV_DIR = "srv"
HOST_PATHS = {DOCKER_DIR: "/var/lib/docker", SRV_DIR: "/srv/drape"}
"""Directory on the disk -> where the lab host sees it."""


@dataclass(frozen=True)
class Disk:
    host: str
    image: Path
    mountpoint: Path

    def binds(self) -> dict[Path, str]:
        """Directory on this machine -> mount point in the lab host (pure)."""
        return {self.mountpoint / directory: target for directory, target in HOST_PATHS.items()}


def disk(settings: LabSettings, host: str, root: Path = DISKS_DIR) -> Disk:
    name = f"{settings.prefix}-{host}"
    return Disk(host, root / f"{name}.img", root / name)


def mkfs_argv(device: str, label: str) -> list[str]:
    """XFS as production formats it: reflink on (pnpm's clone imports), ftype=1 for overlay2 (the default)."""
    return ["mkfs.xfs", "-q", "-m", "reflink=1", "-n", "ftype=1", "-L", label[:12], device]


def lab_disks(settings: LabSettings, root: Path = DISKS_DIR) -> list[Disk]:
    """Every disk image of this lab on this machine, by name (``<prefix>-ax<N>.img``)."""
    pattern = re.compile(rf"^{re.escape(settings.prefix)}-(ax[0-9]+)\.img$")
    found = [pattern.fullmatch(path.name) for path in sorted(root.glob("*.img"))] if root.is_dir() else []
    return [disk(settings, match.group(1), root) for match in found if match]


def _mounted_source(mountpoint: Path) -> tuple[str, str] | None:
    """(device, filesystem type) mounted at ``mountpoint``, or None."""
    result = shell.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--mountpoint", str(mountpoint)], check=False)
    fields = result.stdout.split()
    return (fields[0], fields[1]) if result.ok and len(fields) == 2 else None


def _attached(image: Path) -> list[str]:
    """Loop devices attached to ``image`` (``losetup -j``)."""
    result = shell.run(["losetup", "-j", str(image), "-O", "NAME", "-n"], check=False)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def ensure_disk(settings: LabSettings, host: str, log: Log, root: Path = DISKS_DIR) -> Disk:
    """The host's disk exists, is attached, formatted (only when blank) and mounted; its directories exist."""
    target = disk(settings, host, root)
    mounted = _mounted_source(target.mountpoint)
    if mounted is not None and mounted[1] != "xfs":
        raise LabError(f"{target.mountpoint} holds a {mounted[1]} filesystem, not the lab's XFS disk: unmount it "
                       "(or run `invoke lab.down`) and run `invoke lab.up` again")
    if mounted is None:
        ensure_tools(log, {"mkfs.xfs": "xfsprogs", "losetup": "mount"})
        root.mkdir(parents=True, exist_ok=True)
        if not target.image.exists():
            log(f"{host}: making its data disk ({settings.host_disk_gib} GiB sparse, XFS with reflink)")
            shell.run(["truncate", "-s", f"{settings.host_disk_gib}G", str(target.image)])
        devices = _attached(target.image)
        if devices:
            device = devices[0]
        else:
            attach = shell.run(["losetup", "--find", "--show", str(target.image)], check=False)
            if not attach.ok:
                raise LabError(f"{host}: no free loop device for {target.image} ({attach.stderr.strip()}): "
                               "`losetup -a` lists who holds them; free one or run `invoke lab.down` on an unused lab")
            device = attach.stdout.strip()
        kind = shell.run(["blkid", "-o", "value", "-s", "TYPE", device], check=False).stdout.strip()
        if not kind:
            shell.run(mkfs_argv(device, f"{settings.prefix}-{host}"), timeout=120)
        elif kind != "xfs":
            raise LabError(f"{target.image} holds a {kind} filesystem, not XFS: remove it (`invoke lab.down`)")
        target.mountpoint.mkdir(parents=True, exist_ok=True)
        shell.run(["mount", "-t", "xfs", device, str(target.mountpoint)], timeout=60)
    for directory in HOST_PATHS:
        (target.mountpoint / directory).mkdir(exist_ok=True)
    return target


def remove_disk(target: Disk, log: Log) -> None:
    """Unmount, detach and delete one disk (after the host that used it is gone)."""
    if _mounted_source(target.mountpoint) is not None:
        log(f"unmounting {target.mountpoint}")
        result = shell.run(["umount", str(target.mountpoint)], check=False, timeout=60)
        if not result.ok:
            raise LabError(f"could not unmount {target.mountpoint}: {result.stderr.strip()} "
                           f"(`fuser -vm {target.mountpoint}` shows who still uses it)")
    for device in _attached(target.image):
        shell.run(["losetup", "-d", device], check=False)
    if target.mountpoint.is_dir():
        target.mountpoint.rmdir()
    if target.image.exists():
        log(f"removing {target.image}")
        target.image.unlink()


def filesystem_of(path: Path) -> str:
    """The type of the filesystem ``path`` is on (``stat -f``), for checks and status."""
    return shell.run(["stat", "-f", "-c", "%T", str(path)], check=False).stdout.strip()
