"""Facts about software RAID and LVM."""

from __future__ import annotations

from pyinfra.api.facts import FactBase

from drape_fleet.provision.storage import (
    Lv,
    MdArray,
    MdDetail,
    Vg,
    parse_lvs,
    parse_mdadm_detail,
    parse_mdstat,
    parse_vgs,
)


class MdStat(FactBase[list[MdArray]]):
    """Arrays in /proc/mdstat; empty where the kernel has no md driver (the lab)."""

    def command(self) -> str:
        return "cat /proc/mdstat 2>/dev/null || true"

    @staticmethod
    def default() -> list[MdArray]:
        return []

    def process(self, output: list[str]) -> list[MdArray]:
        return parse_mdstat("\n".join(output))


class MdadmDetail(FactBase[MdDetail | None]):
    """``mdadm --detail`` of one array."""

    def requires_command(self, device: str) -> str:
        return "mdadm"

    def command(self, device: str) -> str:
        return f"mdadm --detail {device}"

    def process(self, output: list[str]) -> MdDetail:
        return parse_mdadm_detail("\n".join(output))


class LvmLogicalVolumes(FactBase[list[Lv]]):
    def requires_command(self) -> str:
        return "lvs"

    def command(self) -> str:
        return "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,lv_path,lv_attr"

    @staticmethod
    def default() -> list[Lv]:
        return []

    def process(self, output: list[str]) -> list[Lv]:
        return parse_lvs("\n".join(output))


class LvmVolumeGroups(FactBase[list[Vg]]):
    def requires_command(self) -> str:
        return "vgs"

    def command(self) -> str:
        return "vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free"

    @staticmethod
    def default() -> list[Vg]:
        return []

    def process(self, output: list[str]) -> list[Vg]:
        return parse_vgs("\n".join(output))


class BlockFilesystem(FactBase[str | None]):
    """The filesystem type on a block device (``ext4``), or None when it has none (or does not exist)."""

    def command(self, device: str) -> str:
        return f"blkid -p -o value -s TYPE {device} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        value = "\n".join(output).strip()
        return value or None
