"""Storage: RAID1 whole and watched, volumes mounted where Docker and the cache expect them."""

from __future__ import annotations

import json
import shlex
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


# ---------------------------------------------------------------------------------------------------
# Per-container disk limits: XFS project quotas under /var/lib/docker (issue 8)
# ---------------------------------------------------------------------------------------------------

NO_XFS_QUOTA_KERNEL = (
    "this kernel has no XFS quota support (no /proc/fs/xfs/xqm: CONFIG_XFS_QUOTA is off), so prjquota mounts "
    "fail and overlay2 cannot limit a container's writable layer; the lab fleet says docker.disk_quotas = false. "
    "Only a real host proves ENOSPC at a preview's size and inode limits while its neighbour writes on "
    "(deploys/README.md, 'What the lab cannot prove')")


@pytest.fixture(scope="module")
def quotas(host: Any, fleet: FleetConfig) -> None:
    """Skip only where the data says there are no quotas AND the kernel indeed cannot have them."""
    kernel_can = host.file("/proc/fs/xfs/xqm").exists
    if not fleet.provisioning.docker.disk_quotas:
        if kernel_can:
            pytest.fail("this host's kernel supports XFS quotas, but the fleet file says "
                        "provisioning.docker.disk_quotas = false: previews would have no disk limit")
        pytest.skip(NO_XFS_QUOTA_KERNEL)


def _store_volume(fleet: FleetConfig) -> str:
    store = fleet.provisioning.cache.store_path
    mounts = [v.mount for v in fleet.provisioning.storage.volumes
              if store == v.mount or store.startswith(v.mount.rstrip("/") + "/")]
    return max(mounts, key=len) if mounts else store


def test_docker_data_and_store_are_xfs_with_project_quotas_and_reflinks(host: Any, fleet: FleetConfig,
                                                                        quotas: None) -> None:
    for mount in ("/var/lib/docker", _store_volume(fleet)):
        fstype, options = host.check_output(f"findmnt -no FSTYPE,OPTIONS --mountpoint {mount}").split()
        assert fstype == "xfs", mount
        assert {"prjquota", "pquota"} & set(options.split(",")), f"{mount}: {options}"
        assert "reflink=1" in host.check_output(f"xfs_info {mount}"), mount
        assert "prjquota" in host.file("/etc/fstab").content_string


def test_docker_limits_every_writable_layer(host: Any, docker_info: dict[str, Any], fleet: FleetConfig,
                                            quotas: None) -> None:
    assert ["Backing Filesystem", "xfs"] in docker_info["DriverStatus"]
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert f"overlay2.size={fleet.provisioning.docker.container_disk_gib}G" in daemon.get("storage-opts", [])
    report = host.check_output("xfs_quota -x -c 'report -p -i -N' /var/lib/docker")
    default = next(line.split() for line in report.splitlines() if line.split()[:1] == ["#0"])
    assert int(default[3]) == fleet.provisioning.docker.container_inodes, default


MANY_FILES = "mkdir /many && cd /many && for i in $(busybox seq {count}); do : > f$i || exit 7; done"


def _write(host: Any, cid: str, script: str) -> Any:
    return host.run(f"docker exec {cid} busybox sh -c {shlex.quote(script)}")


def test_a_preview_past_its_size_gets_enospc_and_its_neighbour_does_not(host: Any, container: Any,
                                                                        quotas: None) -> None:
    full = container("--storage-opt size=64M", "busybox sleep 300")
    neighbour = container("--storage-opt size=64M", "busybox sleep 300")
    filled = _write(host, full, "busybox dd if=/dev/zero of=/big bs=1M count=100")
    assert filled.rc != 0 and "No space left on device" in filled.stderr, filled.stderr
    wrote = _write(host, neighbour, "busybox dd if=/dev/zero of=/big bs=1M count=32")
    assert wrote.rc == 0, wrote.stderr


def test_a_preview_past_its_inode_limit_gets_enospc_and_its_neighbour_does_not(host: Any, container: Any,
                                                                               quotas: None) -> None:
    """The default limit (checked above) is what every container gets; here one container's project gets a
    small limit of its own, so the limit is reached in seconds."""
    full = container("--storage-opt size=256M", "busybox sleep 300")
    neighbour = container("--storage-opt size=256M", "busybox sleep 300")
    upper = host.check_output(f"docker inspect -f '{{{{.GraphDriver.Data.UpperDir}}}}' {full}")
    project = host.check_output(f"xfs_io -c lsproj {shlex.quote(upper.rsplit('/', 1)[0])}").split("=")[-1].strip()
    host.check_output(f"xfs_quota -x -c 'limit -p ihard=2000 {project}' /var/lib/docker")
    made = _write(host, full, MANY_FILES.format(count=3000))
    assert made.rc == 7 and "No space left on device" in made.stderr, made.stderr
    fine = _write(host, neighbour, MANY_FILES.format(count=2500))
    assert fine.rc == 0, fine.stderr
