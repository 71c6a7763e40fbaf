"""RAID and LVM as data: parsers for /proc/mdstat, ``mdadm --detail`` and ``lvs``/``vgs`` JSON, the verdict
on an array, and the plan for the logical volumes. Pure; the pyinfra facts in ``drape_fleet.facts`` call
these, and tests feed them outputs in the exact formats an AX102 prints (tests/fixtures/storage/).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from drape_fleet.config.provisioning import LogicalVolume, StorageSettings
from drape_fleet.provision.render import render

ArrayHealth = Literal["healthy", "degraded", "resyncing", "recovering", "inactive"]


@dataclass(frozen=True)
class MdMember:
    name: str
    role: int
    failed: bool = False
    spare: bool = False


@dataclass(frozen=True)
class MdArray:
    name: str
    state: str  # active, inactive, "active (auto-read-only)"
    level: str
    members: tuple[MdMember, ...]
    raid_disks: int | None = None
    working_disks: int | None = None
    status: str = ""  # "UU", "U_"
    sync_action: str | None = None  # resync, recovery, check, reshape
    sync_progress: float | None = None  # percent

    @property
    def health(self) -> ArrayHealth:
        if not self.state.startswith("active"):
            return "inactive"
        if self.sync_action == "recovery":
            return "recovering"
        missing = (self.raid_disks is not None and self.working_disks is not None
                   and self.working_disks < self.raid_disks) or "_" in self.status
        if missing or any(m.failed for m in self.members):
            return "degraded"
        if self.sync_action in ("resync", "reshape"):
            return "resyncing"
        return "healthy"

    @property
    def redundant(self) -> bool:
        """Whether losing one more disk would still leave the data: only a healthy mirror (or one merely
        re-checking) is."""
        return self.health in ("healthy", "resyncing") and self.level != "raid0"

    def describe(self) -> str:
        members = ", ".join(f"{m.name}{'(F)' if m.failed else ''}{'(S)' if m.spare else ''}" for m in self.members)
        progress = f", {self.sync_action} {self.sync_progress:.1f}%" if self.sync_action is not None else ""
        status = f" [{self.status}]" if self.status else ""
        return f"{self.name} ({self.level}, {self.health}{progress}){status}: {members or 'no members'}"


_HEADER = re.compile(r"^(?P<name>md\S*) : (?P<state>active \(auto-read-only\)|active \(read-only\)|active|inactive)"
                     r"(?: (?P<level>raid\d+|linear|multipath|faulty))?(?P<members>.*)$")
_MEMBER = re.compile(r"(?P<name>[\w.-]+)\[(?P<role>\d+)\](?P<flags>(?:\([A-Z]\))*)")
_COUNTS = re.compile(r"\[(?P<raid>\d+)/(?P<working>\d+)\] \[(?P<status>[U_]+)\]")
_SYNC = re.compile(r"(?P<action>resync|recovery|check|reshape|repair)\s*=\s*(?P<pct>[\d.]+)%")
_SYNC_WAIT = re.compile(r"(?P<action>resync|recovery|check|reshape|repair)\s*=\s*(?P<what>DELAYED|PENDING)")


def parse_mdstat(text: str) -> list[MdArray]:
    """Arrays in /proc/mdstat (empty when the file is empty or absent)."""
    arrays: list[MdArray] = []
    current: dict[str, object] | None = None

    def close() -> None:
        if current is not None:
            arrays.append(MdArray(**current))  # type: ignore[arg-type]

    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            close()
            members = tuple(
                MdMember(m["name"], int(m["role"]), failed="(F)" in m["flags"], spare="(S)" in m["flags"])
                for m in _MEMBER.finditer(header["members"])
            )
            current = {"name": header["name"], "state": header["state"], "level": header["level"] or "unknown",
                       "members": members}
            continue
        if current is None:
            continue
        if counts := _COUNTS.search(line):
            current.update(raid_disks=int(counts["raid"]), working_disks=int(counts["working"]),
                           status=counts["status"])
        if sync := _SYNC.search(line):
            current.update(sync_action=sync["action"], sync_progress=float(sync["pct"]))
        elif wait := _SYNC_WAIT.search(line):
            current.update(sync_action=wait["action"], sync_progress=0.0)
        if not line.strip():
            close()
            current = None
    close()
    return arrays


@dataclass(frozen=True)
class MdDetail:
    """The parts of ``mdadm --detail`` the verdict uses."""

    device: str
    level: str
    state: tuple[str, ...]
    raid_devices: int
    active_devices: int
    working_devices: int
    failed_devices: int
    rebuild_percent: int | None = None
    members: tuple[tuple[str, str], ...] = field(default=())  # (device or "-", state text)

    @property
    def degraded(self) -> bool:
        return "degraded" in self.state or self.active_devices < self.raid_devices or self.failed_devices > 0


def parse_mdadm_detail(text: str) -> MdDetail:
    lines = text.splitlines()
    device = lines[0].rstrip(":").strip() if lines else ""
    values: dict[str, str] = {}
    members: list[tuple[str, str]] = []
    in_table = False
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("Number") and "RaidDevice" in stripped:
            in_table = True
            continue
        if in_table:
            if not stripped:
                continue
            parts = stripped.split()
            dev = parts[-1] if parts[-1].startswith("/dev/") else "-"
            state_words = [p for p in parts[4:] if not p.startswith("/dev/")] if len(parts) > 4 else parts[1:]
            members.append((dev, " ".join(w for w in state_words if not w.isdigit()) or stripped))
            continue
        if " : " in line:
            key, _, value = line.partition(" : ")
            values[key.strip()] = value.strip()
    rebuild = re.match(r"(\d+)%", values.get("Rebuild Status", "") or values.get("Resync Status", ""))
    return MdDetail(
        device=device,
        level=values.get("Raid Level", "unknown"),
        state=tuple(s.strip() for s in values.get("State", "").split(",") if s.strip()),
        raid_devices=int(values.get("Raid Devices", "0")),
        active_devices=int(values.get("Active Devices", "0")),
        working_devices=int(values.get("Working Devices", "0")),
        failed_devices=int(values.get("Failed Devices", "0")),
        rebuild_percent=int(rebuild.group(1)) if rebuild else None,
        members=tuple(members),
    )


# ---------------------------------------------------------------------------------------------------
# The verdict before provisioning
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RaidVerdict:
    ok: bool
    message: str
    forced: bool = False
    """Not redundant, and --force said to go on anyway (ops must hear about it)."""


def raid_verdict(arrays: list[MdArray], settings: StorageSettings, *, force: bool = False) -> RaidVerdict:
    """Refuse a host whose mirror is not whole (or that should have one and has none), unless forced."""
    if not settings.expect_raid:
        summary = "; ".join(a.describe() for a in arrays) or "none"
        return RaidVerdict(True, f"RAID not expected in this environment (arrays: {summary})")
    if not arrays:
        problem = "no software RAID array found, but this environment expects RAID1 (installimage SWRAID=1)"
    else:
        bad = [a for a in arrays if not a.redundant]
        if not bad:
            return RaidVerdict(True, "RAID healthy: " + "; ".join(a.describe() for a in arrays))
        problem = "RAID not redundant: " + "; ".join(a.describe() for a in bad)
    if force:
        return RaidVerdict(True, f"FORCED despite: {problem}", forced=True)
    return RaidVerdict(False, f"{problem}. Replace or re-add the failed disk and wait for the recovery to "
                              "finish (cat /proc/mdstat), or pass --force to provision anyway")


# ---------------------------------------------------------------------------------------------------
# LVM
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lv:
    name: str
    vg: str
    size_bytes: int
    path: str
    attr: str


@dataclass(frozen=True)
class Vg:
    name: str
    size_bytes: int
    free_bytes: int


def _report(text: str, kind: str) -> list[dict[str, str]]:
    if not text.strip():
        return []
    data = json.loads(text)
    rows: list[dict[str, str]] = []
    for report in data.get("report", []):
        rows.extend(report.get(kind, []))
    return rows


def _bytes(value: str) -> int:
    return int(float(value.rstrip("B") or 0))


def parse_lvs(text: str) -> list[Lv]:
    """``lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,lv_path,lv_attr``."""
    return [Lv(r["lv_name"], r["vg_name"], _bytes(r["lv_size"]), r.get("lv_path", ""), r.get("lv_attr", ""))
            for r in _report(text, "lv")]


def parse_vgs(text: str) -> list[Vg]:
    """``vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free``."""
    return [Vg(r["vg_name"], _bytes(r["vg_size"]), _bytes(r["vg_free"])) for r in _report(text, "vg")]


_UNITS = {"G": 1024**3, "T": 1024**4}


def size_bytes(size: str) -> int:
    return int(size[:-1]) * _UNITS[size[-1]]


@dataclass(frozen=True)
class VolumeStep:
    volume: LogicalVolume
    action: Literal["create", "keep"]
    device: str
    note: str


class StoragePlanError(ValueError):
    pass


def volume_plan(settings: StorageSettings, vgs: list[Vg], lvs: list[Lv]) -> list[VolumeStep]:
    """For each wanted volume: create it when missing, keep it (never reformat, never resize) when present.
    Refuses when the volume group is missing or has too little free space for what must be created."""
    vg = next((v for v in vgs if v.name == settings.volume_group), None)
    if vg is None:
        known = ", ".join(v.name for v in vgs) or "none"
        raise StoragePlanError(f"volume group {settings.volume_group!r} not found (found: {known}). "
                               "Fix: set provisioning.storage.volume_group to the one installimage made")
    steps: list[VolumeStep] = []
    needed = 0
    for volume in settings.volumes:
        device = f"/dev/{vg.name}/{volume.name}"
        existing = next((lv for lv in lvs if lv.vg == vg.name and lv.name == volume.name), None)
        if existing is not None:
            note = f"exists ({existing.size_bytes / 1024**3:.0f} GiB): kept as it is, never reformatted"
            steps.append(VolumeStep(volume, "keep", device, note))
            continue
        needed += size_bytes(volume.size)
        steps.append(VolumeStep(volume, "create", device, f"missing: created with {volume.size}"))
    if needed > vg.free_bytes:
        raise StoragePlanError(f"volume group {vg.name} has {vg.free_bytes / 1024**3:.0f} GiB free, "
                               f"{needed / 1024**3:.0f} GiB needed for the missing volumes. Fix: lower their "
                               "sizes in provisioning.storage.volumes")
    return steps


# ---------------------------------------------------------------------------------------------------
# Disk monitoring files
# ---------------------------------------------------------------------------------------------------

ALERT_SCRIPT = "/usr/local/sbin/drape-disk-alert"
MDADM_CONF = "/etc/mdadm/mdadm.conf"
SMARTD_CONF = "/etc/smartd.conf"


ALERT_SCRIPT_FILE = "storage/drape-disk-alert"
"""Plain file, called by mdadm's monitor (event, device[, member]) and by smartd (-M exec, details in
SMARTD_*): logs at priority crit, where journald, `invoke verify` and any log shipper see it, and mails root."""


def mdadm_monitor_lines(settings: StorageSettings) -> dict[str, str]:
    """mdadm.conf lines to set (regex of the line each replaces -> the line), from
    files/storage/mdadm-monitor.conf.j2: the distribution owns the rest of that file."""
    lines = render("storage/mdadm-monitor.conf.j2", storage=settings, alert_script=ALERT_SCRIPT).splitlines()
    return {rf"^{line.split()[0]}\s": line for line in lines}


def smartd_conf(settings: StorageSettings) -> str:
    return render("storage/smartd.conf.j2", storage=settings, alert_script=ALERT_SCRIPT)


def mount_options(volume: LogicalVolume) -> tuple[str, ...]:
    """XFS volumes mount with project quotas: overlay2 enforces each container's ``size`` with them, and the
    same options are what installimage's post-install writes into fstab
    (``drape_fleet.installimage.layout.QUOTA_MOUNT_OPTIONS``; a test keeps the two equal). XFS turns quotas on
    only at mount time, never on a remount."""
    base = ("defaults", "noatime")
    return (*base, "prjquota") if volume.filesystem == "xfs" else base


def fstab_line(step: VolumeStep) -> str:
    options = ",".join(mount_options(step.volume))
    return f"{step.device} {step.volume.mount} {step.volume.filesystem} {options} 0 2"


def mkfs_command(step: VolumeStep) -> str:
    """Format only a device that carries no filesystem signature at all (`blkid -p` finds nothing). XFS with
    reflinks (the shared store's clones) stated, not left to the xfsprogs default."""
    volume = step.volume
    label = f"-L {volume.name}" if volume.filesystem == "ext4" else f"-L {volume.name[:12]} -m reflink=1"
    return (f"if blkid -p {step.device} >/dev/null 2>&1; then echo '{step.device} already has a filesystem: "
            f"not formatting it' >&2; exit 1; fi; mkfs.{volume.filesystem} -q {label} {step.device}")


def default_inode_limit_command(mount: str, inodes: int) -> str:
    """XFS default project quota: every project (each container's writable layer, which overlay2 gives one)
    without an inode limit of its own gets this one. Docker sets only block limits."""
    return f"xfs_quota -x -c 'limit -p -d isoft={inodes} ihard={inodes}' {mount}"


DEFAULT_INODE_LIMIT_QUERY = "xfs_quota -x -c 'report -p -i -N' {mount} | awk '$1 == \"#0\" {{ print $4 }}'"
"""The inode hard limit of project 0, which XFS applies as every project's default."""


def lvcreate_command(step: VolumeStep, volume_group: str) -> str:
    return f"lvcreate --yes --wipesignatures y --zero y -n {step.volume.name} -L {step.volume.size} {volume_group}"
