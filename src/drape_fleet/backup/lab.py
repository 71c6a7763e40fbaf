"""The lab's backup section (pure): its stand-in Storage Box is a container of its own on the lab's public
network (``drape_fleet.backup.lab_target``), SFTP on port 23 as on a Storage Box, its key pinned by lab.up."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from drape_fleet.lab.settings import LabSettings

TARGET_OFFSET = 7
"""The target's address on the public lab network: .7 (.5 is the lab's git server, .11 up its hosts)."""
TARGET_USER = "u-drape"
TARGET_PORT = 23
KNOWN_HOSTS = "backup/target.known_hosts"
"""Relative to the lab's fleet file (its state directory), as a production fleet file names its own."""
TARGET_SIZE_MIB = 512
"""The target's disk (a tmpfs): small, so that "target full" can be shown."""


def target_address(settings: LabSettings) -> IPv4Address:
    return settings.public_subnet.network_address + TARGET_OFFSET


def lab_backup_data(settings: LabSettings) -> dict[str, Any]:
    return {
        "target": {"host": str(target_address(settings)), "port": TARGET_PORT, "user": TARGET_USER,
                   "path": "drape", "known_hosts": KNOWN_HOSTS},
        "every_hours": 24,
        "retention": {"keep_last": 3, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0},
        "quiesce_timeout_s": 30,
        "lvm_snapshot_size": "1G",
        "min_free_mib": 16,
    }
