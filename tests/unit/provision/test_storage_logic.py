"""RAID and LVM logic from outputs in the formats an AX102 prints (tests/fixtures/storage)."""

from __future__ import annotations

import pytest
from provision_testdata import fixture_text

from drape_fleet.config.provisioning import LogicalVolume, StorageSettings
from drape_fleet.facts.storage import LvmLogicalVolumes, LvmVolumeGroups, MdadmDetail, MdStat
from drape_fleet.provision.storage import (
    StoragePlanError,
    mkfs_command,
    parse_lvs,
    parse_mdadm_detail,
    parse_mdstat,
    parse_vgs,
    raid_verdict,
    volume_plan,
)

EXPECT_RAID = StorageSettings()


def test_healthy_mirrors() -> None:
    arrays = parse_mdstat(fixture_text("mdstat-healthy"))
    assert [(a.name, a.level, a.health, a.status) for a in arrays] == [
        ("md2", "raid1", "healthy", "UU"), ("md1", "raid1", "healthy", "UU"), ("md0", "raid1", "healthy", "UU")]
    assert [m.name for m in arrays[0].members] == ["nvme0n1p3", "nvme1n1p3"]
    verdict = raid_verdict(arrays, EXPECT_RAID)
    assert verdict.ok and verdict.message.startswith("RAID healthy: md2 (raid1, healthy) [UU]")


def test_degraded_is_refused_unless_forced() -> None:
    arrays = parse_mdstat(fixture_text("mdstat-degraded"))
    assert [a.health for a in arrays] == ["degraded", "degraded", "degraded"]
    assert arrays[1].members[1].failed and arrays[1].members[1].name == "nvme1n1p2"
    verdict = raid_verdict(arrays, EXPECT_RAID)
    assert not verdict.ok
    assert "RAID not redundant: md2 (raid1, degraded) [U_]: nvme0n1p3" in verdict.message
    assert "md1 (raid1, degraded) [U_]: nvme0n1p2, nvme1n1p2(F)" in verdict.message
    assert verdict.message.endswith("or pass --force to provision anyway")
    forced = raid_verdict(arrays, EXPECT_RAID, force=True)
    assert forced.ok and forced.message.startswith("FORCED despite: RAID not redundant")


def test_recovering_is_not_redundant_yet() -> None:
    arrays = parse_mdstat(fixture_text("mdstat-recovering"))
    md2 = arrays[0]
    assert (md2.health, md2.sync_action, md2.sync_progress) == ("recovering", "recovery", 12.6)
    assert [a.health for a in arrays[1:]] == ["healthy", "healthy"]
    assert not raid_verdict(arrays, EXPECT_RAID).ok


def test_initial_resync_with_both_disks_is_accepted() -> None:
    arrays = parse_mdstat(fixture_text("mdstat-resyncing"))
    assert [(a.name, a.health, a.sync_action, a.sync_progress) for a in arrays] == [
        ("md2", "resyncing", "resync", 23.4), ("md1", "healthy", None, None), ("md0", "resyncing", "resync", 0.0)]
    assert raid_verdict(arrays, EXPECT_RAID).ok


def test_no_arrays_where_raid_is_expected_or_not() -> None:
    assert parse_mdstat(fixture_text("mdstat-empty")) == []
    assert parse_mdstat("") == []
    refused = raid_verdict([], EXPECT_RAID)
    assert not refused.ok and "no software RAID array found" in refused.message
    lab = raid_verdict([], StorageSettings(expect_raid=False))
    assert lab.ok and lab.message == "RAID not expected in this environment (arrays: none)"


def test_mdadm_detail() -> None:
    healthy = parse_mdadm_detail(fixture_text("mdadm-detail-healthy"))
    assert (healthy.device, healthy.level, healthy.state, healthy.degraded) == ("/dev/md2", "raid1", ("clean",), False)
    assert healthy.members == (("/dev/nvme0n1p3", "active sync"), ("/dev/nvme1n1p3", "active sync"))
    degraded = parse_mdadm_detail(fixture_text("mdadm-detail-degraded"))
    assert degraded.state == ("clean", "degraded") and degraded.degraded
    assert degraded.members[1] == ("-", "removed")
    recovering = parse_mdadm_detail(fixture_text("mdadm-detail-recovering"))
    assert recovering.degraded and recovering.rebuild_percent == 12
    assert recovering.members[1] == ("/dev/nvme1n1p3", "spare rebuilding")


def test_facts_process_what_the_commands_print() -> None:
    assert [a.health for a in MdStat().process(fixture_text("mdstat-degraded").splitlines())] == ["degraded"] * 3
    assert MdadmDetail().process(fixture_text("mdadm-detail-degraded").splitlines()).degraded
    assert MdadmDetail().command("/dev/md2") == "mdadm --detail /dev/md2"
    assert [lv.name for lv in LvmLogicalVolumes().process(fixture_text("lvs-provisioned.json").splitlines())] == [
        "docker", "drape", "root"]
    assert LvmVolumeGroups().process(fixture_text("vgs.json").splitlines())[0].free_bytes == 1775385034752


def test_volume_plan_creates_missing_and_keeps_present() -> None:
    vgs = parse_vgs(fixture_text("vgs.json"))
    fresh = volume_plan(EXPECT_RAID, vgs, parse_lvs(fixture_text("lvs.json")))
    assert [(s.volume.name, s.action, s.device) for s in fresh] == [
        ("docker", "create", "/dev/vg0/docker"), ("drape", "create", "/dev/vg0/drape")]
    again = volume_plan(EXPECT_RAID, vgs, parse_lvs(fixture_text("lvs-provisioned.json")))
    assert [s.action for s in again] == ["keep", "keep"]
    assert again[0].note == "exists (1200 GiB): kept as it is, never reformatted"


def test_volume_plan_refusals() -> None:
    vgs = parse_vgs(fixture_text("vgs.json"))
    with pytest.raises(StoragePlanError, match="volume group 'data' not found \\(found: vg0\\)"):
        volume_plan(StorageSettings(volume_group="data"), vgs, [])
    big = StorageSettings(volumes=(LogicalVolume(name="docker", mount="/var/lib/docker", size="2T"),))
    with pytest.raises(StoragePlanError, match="1653 GiB free, 2048 GiB needed"):
        volume_plan(big, vgs, parse_lvs(fixture_text("lvs.json")))


def test_formatting_refuses_a_device_that_has_a_filesystem() -> None:
    step = volume_plan(EXPECT_RAID, parse_vgs(fixture_text("vgs.json")), parse_lvs(fixture_text("lvs.json")))[0]
    assert mkfs_command(step) == (
        "if blkid -p /dev/vg0/docker >/dev/null 2>&1; then echo '/dev/vg0/docker already has a filesystem: "
        "not formatting it' >&2; exit 1; fi; mkfs.xfs -q -L docker -m reflink=1 /dev/vg0/docker")
