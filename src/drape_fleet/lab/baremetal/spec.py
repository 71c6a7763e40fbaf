"""What a bare-metal stand-in asks the Docker engine for, per boot (pure; tested exactly).

Both boots use the lab host recipe (``drape_fleet.lab.spec``: systemd as PID 1, the lab's address) with their own
mounts and labels:

- the rescue system: the rescue image, the machine's whole disk at /mnt/disk, the project's source read-only
  (the installimage stand-in runs the project's validator from it), and a /sys/firmware that says how the
  firmware boots (an ``efi`` directory for UEFI, none for legacy BIOS, whatever this machine's own firmware is).
  Only the public network: the rescue system does not configure the vSwitch.
- the installed system: the lab host image, both networks, and the installed volumes at the mount points the
  installed fstab gives them (``drape_fleet.lab.baremetal.disk``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drape_fleet.lab.baremetal.machine import BOOT_LABEL, GENERATION_LABEL, BareMetal
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.spec import host_container_spec

CGROUP_BIND = "/sys/fs/cgroup:/sys/fs/cgroup:rw"
RESCUE_DISK = "/mnt/disk"
RESCUE_SOURCE = "/opt/drape-fleet/src"
RESCUE_RECORDS = "/var/log/drape-installimage"
"""Where the installimage stand-in records what it received: a directory of the machine's on this machine, so
the record outlives the rescue system."""
RESCUE_HOSTNAME = "rescue"


def _base(settings: LabSettings, machine: BareMetal, image: str, *, boot: str, generation: int, hostname: str,
          binds: list[str]) -> dict[str, Any]:
    spec = copy.deepcopy(host_container_spec(settings, machine.index, image))
    spec["Hostname"] = hostname
    spec["HostConfig"]["Binds"] = [*binds, CGROUP_BIND]
    spec["Labels"] = {**machine.labels(settings), BOOT_LABEL: boot, GENERATION_LABEL: str(generation)}
    return spec


def rescue_spec(settings: LabSettings, machine: BareMetal, image: str, *, source: Path, firmware: Path,
                records: Path, generation: int) -> dict[str, Any]:
    """The rescue system's container (``firmware``: a directory standing for /sys/firmware)."""
    binds = [f"{machine.disk_volume(settings)}:{RESCUE_DISK}:rw", f"{source}:{RESCUE_SOURCE}:ro",
             f"{firmware}:/sys/firmware:ro", f"{records}:{RESCUE_RECORDS}:rw"]
    return _base(settings, machine, image, boot="rescue", generation=generation, hostname=RESCUE_HOSTNAME,
                 binds=binds)


def installed_spec(settings: LabSettings, machine: BareMetal, image: str, *, hostname: str,
                   volumes: Sequence[tuple[Path, str]], generation: int) -> dict[str, Any]:
    """The installed system's container: ``volumes`` are (directory on this machine, mount point)."""
    binds = [f"{directory}:{mount}:rw" for directory, mount in volumes]
    return _base(settings, machine, image, boot="disk", generation=generation, hostname=hostname, binds=binds)
