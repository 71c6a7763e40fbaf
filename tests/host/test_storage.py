"""Storage: RAID1 whole and watched, volumes mounted where Docker and the cache expect them."""

from __future__ import annotations

from typing import Any

import pytest

from drape_fleet.config import FleetConfig


def test_volumes_are_mounted(host: Any, fleet: FleetConfig) -> None:
    storage = fleet.provisioning.storage
    for volume in storage.volumes:
        source = host.run(f"findmnt -no SOURCE --mountpoint {volume.mount}").stdout.strip()
        assert source, f"{volume.mount} is not a mount of its own"
        if storage.manage_volumes:
            assert source in (f"/dev/mapper/{storage.volume_group}-{volume.name}",
                              f"/dev/{storage.volume_group}/{volume.name}"), source
            assert volume.mount in host.file("/etc/fstab").content_string


def test_raid_arrays_are_whole(host: Any, fleet: FleetConfig) -> None:
    if not fleet.provisioning.storage.expect_raid:
        pytest.skip("this environment expects no RAID (a lab host: the kernel here has no md driver); "
                    "RAID logic is tested from fixtures in tests/unit/provision")
    mdstat = host.file("/proc/mdstat").content_string
    arrays = [line for line in mdstat.splitlines() if line.startswith("md")]
    assert arrays, "no RAID array"
    assert "_" not in "".join(line for line in mdstat.splitlines() if "blocks" in line), mdstat
    assert "(F)" not in mdstat, mdstat
    assert "recovery" not in mdstat, mdstat


def test_disks_and_arrays_are_watched(host: Any, fleet: FleetConfig) -> None:
    storage = fleet.provisioning.storage
    if not storage.disk_monitoring:
        pytest.skip("this environment watches no disks (a lab host has neither md arrays nor NVMe drives)")
    assert host.service("mdmonitor").is_running
    assert host.service("smartmontools").is_running
    conf = host.file("/etc/mdadm/mdadm.conf").content_string
    assert f"MAILADDR {storage.alert_email}" in conf
    assert "PROGRAM /" in conf
    assert "-M exec" in host.file("/etc/smartd.conf").content_string
