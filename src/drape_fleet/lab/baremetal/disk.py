"""The disk of a bare-metal stand-in: one Docker volume holding what a server's drives hold, as directories.

Layout (what the installimage stand-in in images/rescue writes, and what a boot reads):

- ``lv/<vg>/<lv>/``: each logical volume's filesystem;
- ``bootloader``: the root volume's device (``/dev/vg0/root``), as grub would know it;
- the root volume's ``etc/fstab`` says where the other volumes are mounted, ``etc/hostname`` the host's name,
  ``etc/ssh/`` its host keys, ``root/.ssh/authorized_keys`` who may log in as root.

Booting the installed system means: the lab host image, with the root volume's files on top (all but fstab and
hostname, which the container's engine provides) and each data volume mounted where fstab says. The volume's
directory is read and written from this machine (the lab's engine is local, and the lab runs as root).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import NotFound

from drape_fleet.lab.baremetal.machine import BareMetal
from drape_fleet.lab.settings import LabSettings

BOOTLOADER = "bootloader"
NOT_CARRIED = ("etc/fstab", "etc/hostname")
"""Root volume files the container does not get: its engine writes /etc/hostname, and the devices fstab names do
not exist in a container (systemd would wait for them)."""
OLD_DATA = "customer-data.txt"


class NoOperatingSystem(RuntimeError):
    """The disk has nothing to boot (wiped, or an installation that did not finish)."""


@dataclass(frozen=True)
class InstalledSystem:
    root: Path
    hostname: str
    volumes: tuple[tuple[Path, str], ...]
    """(directory, mount point) of each data volume."""


def disk_directory(client: docker.DockerClient, settings: LabSettings, machine: BareMetal) -> Path:
    """The disk's directory on this machine (the volume is made on first use)."""
    name = machine.disk_volume(settings)
    try:
        volume = client.volumes.get(name)
    except NotFound:
        volume = client.volumes.create(name, labels=machine.labels(settings))
    return Path(volume.attrs["Mountpoint"])


def volume_directory(disk: Path, device: str) -> Path | None:
    """``/dev/<vg>/<lv>`` -> its directory on the disk, None for any other device."""
    parts = device.split("/")
    if len(parts) != 4 or parts[:2] != ["", "dev"] or parts[2] in ("md", "mapper", "disk"):
        return None
    return disk / "lv" / parts[2] / parts[3]


def fstab_volumes(fstab: str, disk: Path) -> tuple[tuple[Path, str], ...]:
    """The logical volumes fstab mounts somewhere other than / (swap and partitions left out)."""
    found = []
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#") or not fields[1].startswith("/") or fields[1] == "/":
            continue
        directory = volume_directory(disk, fields[0])
        if directory is not None:
            found.append((directory, fields[1]))
    return tuple(found)


def installed_system(disk: Path) -> InstalledSystem:
    """What the disk boots, read as a boot reads it (bootloader, then the root volume's fstab)."""
    pointer = disk / BOOTLOADER
    if not pointer.is_file():
        raise NoOperatingSystem(f"{disk}: no bootloader (the disk was wiped, or installimage did not finish)")
    device = pointer.read_text().strip()
    root = volume_directory(disk, device)
    if root is None or not (root / "etc" / "fstab").is_file():
        raise NoOperatingSystem(f"{disk}: the bootloader points at {device!r}, which holds no system")
    volumes = fstab_volumes((root / "etc" / "fstab").read_text(), disk)
    missing = [str(directory) for directory, _ in volumes if not directory.is_dir()]
    if missing:
        raise NoOperatingSystem(f"{disk}: fstab names volumes the disk does not have: {', '.join(missing)}")
    hostname = (root / "etc" / "hostname").read_text().strip() if (root / "etc" / "hostname").is_file() else ""
    return InstalledSystem(root, hostname or "localhost", volumes)


def root_archive(root: Path) -> bytes:
    """The root volume's files as a tar stream for the container (owners and modes as on the disk)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if relative not in NOT_CARRIED:
                archive.add(path, arcname=relative, recursive=False)
    return buffer.getvalue()


def install_old_system(disk: Path, hostname: str) -> None:
    """What runs on the server before anyone reinstalls it: some older system with its own host keys (nobody
    here can log in to it) and data on its volumes, which the reinstall must destroy."""
    wipe(disk)
    root = disk / "lv" / "vg0" / "root"
    for volume in ("root", "docker", "drape"):
        (disk / "lv" / "vg0" / volume).mkdir(parents=True)
    (root / "etc" / "ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}",
                    "-f", str(root / "etc" / "ssh" / "ssh_host_ed25519_key")], check=True, capture_output=True)
    (root / "etc" / "hostname").write_text(f"{hostname}\n")
    (root / "etc" / "fstab").write_text("/dev/vg0/root / ext4 defaults 0 0\n"
                                        "/dev/vg0/docker /var/lib/docker ext4 defaults 0 0\n"
                                        "/dev/vg0/drape /srv/drape ext4 defaults 0 0\n")
    (disk / "lv" / "vg0" / "drape" / OLD_DATA).write_text("what the old system kept\n")
    (disk / BOOTLOADER).write_text("/dev/vg0/root\n")


def wipe(disk: Path) -> None:
    for entry in disk.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
