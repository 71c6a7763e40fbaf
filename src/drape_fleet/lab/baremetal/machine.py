"""A bare-metal stand-in as data: which lab address it has, which Robot server it is, how its firmware boots,
what disks its rescue system reports, and where its files and Docker objects are. Pure.

It sits on the lab's networks beside the lab hosts without being one of them: its address comes after the
last one a lab host can have (``MAX_LAB_HOSTS``), so no ``lab.up`` collides with it, and its containers carry
the lab's label (``lab.down`` removes them) but not the lab-host label (``lab.up`` and ``lab.status`` leave them
alone).
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from drape_fleet.config.base import FrozenModel
from drape_fleet.lab.settings import LABEL, MAX_LAB_HOSTS, LabSettings

BAREMETAL_LABEL = f"{LABEL}.baremetal"
"""The machine a container or volume belongs to (instead of the lab hosts' ``drape.lab.host``)."""
BOOT_LABEL = f"{LABEL}.boot"
"""``rescue`` or ``disk``: what the container is booted from."""
GENERATION_LABEL = f"{LABEL}.generation"
"""Which power cycle started it: each reset starts a new one (drape_fleet.lab.baremetal.power)."""

FIRST_INDEX = MAX_LAB_HOSTS + 1


class LabDisk(FrozenModel):
    """One disk as the rescue system's ``lsblk`` reports it."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]
    size_bytes: Annotated[int, Field(gt=0)]
    model: str = ""
    transport: str = "nvme"


AX102_DISKS = (
    LabDisk(name="nvme0n1", size_bytes=1_920_383_410_176, model="SAMSUNG MZQL21T9HCJR-00A07"),
    LabDisk(name="nvme1n1", size_bytes=1_920_383_410_176, model="SAMSUNG MZQL21T9HCJR-00A07"),
)
"""An AX102's two 1.92 TB NVMe drives."""


class BareMetal(FrozenModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,20}$")]
    index: Annotated[int, Field(ge=FIRST_INDEX, le=200)] = FIRST_INDEX
    """Its addresses are the lab's ``.(10 + index)`` on both networks, like a lab host's."""
    robot_server_number: Annotated[int, Field(gt=0)]
    boot_mode: Literal["bios", "uefi"] = "bios"
    """How its firmware boots: UEFI shows as /sys/firmware/efi in the rescue system."""
    disks: tuple[LabDisk, ...] = AX102_DISKS

    def public_address(self, settings: LabSettings) -> IPv4Address:
        return settings.public_address(self.index)

    def private_address(self, settings: LabSettings) -> IPv4Address:
        return settings.private_address(self.index)

    # Docker objects, named in one place.
    def container_name(self, settings: LabSettings, boot: Literal["rescue", "disk"]) -> str:
        base = settings.container_name(self.name)
        return f"{base}-rescue" if boot == "rescue" else base

    def disk_volume(self, settings: LabSettings) -> str:
        return settings.volume_name(self.name, "disk")

    def labels(self, settings: LabSettings) -> dict[str, str]:
        return {LABEL: settings.prefix, BAREMETAL_LABEL: self.name}

    # Files on this machine.
    def directory(self, settings: LabSettings) -> Path:
        return machines_dir(settings) / self.name

    def save(self, settings: LabSettings) -> None:
        directory = self.directory(settings)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "machine.json").write_text(self.model_dump_json(indent=2) + "\n")


def machines_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "baremetal"


def saved_machines(settings: LabSettings) -> list[BareMetal]:
    return [BareMetal.model_validate_json(path.read_text())
            for path in sorted(machines_dir(settings).glob("*/machine.json"))]


def lsblk_report(disks: tuple[LabDisk, ...]) -> str:
    """What ``lsblk -J -b -d -o NAME,PATH,SIZE,TYPE,TRAN,RM,MODEL`` prints for these disks (util-linux 2.38's
    shape: sizes as numbers, ``rm`` as a boolean), with the rescue system's own loop device first."""
    devices: list[dict[str, object]] = [{"name": "loop0", "path": "/dev/loop0", "size": 3466469376, "type": "loop",
                                         "tran": None, "rm": False, "model": None}]
    devices += [{"name": disk.name, "path": f"/dev/{disk.name}", "size": disk.size_bytes, "type": "disk",
                 "tran": disk.transport, "rm": False, "model": disk.model or None} for disk in disks]
    return json.dumps({"blockdevices": devices}, indent=3) + "\n"
