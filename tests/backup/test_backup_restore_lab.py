"""Back up, lose, restore, compare: on real lab hosts, to the lab's stand-in Storage Box over SFTP.

Each test uses its own host's store and leaves the store as it found it (restored or emptied)."""

from __future__ import annotations

import time

import pytest
from backup_lab import STORE, BackupLab, wait_for

from drape_fleet.backup import service

pytestmark = pytest.mark.lab


def test_backup_destroy_restore_is_byte_for_byte(backup_lab: BackupLab) -> None:
    """ax2's store is backed up, deleted, restored: every file, mode, owner, link and mtime as before."""
    lab = backup_lab
    lab.fill_store("ax2", files=40, size_kib=256)  # 10 MiB, incompressible
    before = lab.manifest("ax2")
    [ran] = service.run(lab.target, ["ax2"], "pnpm-store")
    assert ran.ok, ran.error
    [result] = ran.answer["results"]
    assert result["files"] >= 42 and result["size_bytes"] >= 40 * 256 * 1024

    lab.root("ax2", f"rm -rf {STORE}")
    assert lab.root("ax2", f"test -e {STORE} && echo present || echo gone").strip() == "gone"

    started = time.monotonic()
    restored = service.restore(lab.target, "ax2", "pnpm-store", "latest")
    seconds = time.monotonic() - started
    print(f"[measure] restore of {result['size_bytes']} bytes ({result['files']} files) onto ax2: {seconds:.1f} s "
          f"(agent: {restored['seconds']} s)")
    assert restored["kept_aside"] is None  # nothing was there to keep
    assert lab.manifest("ax2") == before

    [drilled] = service.drill(lab.target, ["ax2"], "pnpm-store")
    [report] = drilled.answer["results"]
    assert drilled.ok and report["ok"], report
    assert report["matched"] >= 42 and report["size_bytes"] >= 40 * 256 * 1024


def test_a_killed_backup_leaves_a_repository_the_next_run_completes(backup_lab: BackupLab) -> None:
    """The timer's own unit is killed mid-upload; the next run completes and `restic check` is clean."""
    lab = backup_lab
    lab.root("ax3", f"rm -rf {STORE}/big && rm -f /var/lib/drape/backup/state.json")  # due now
    lab.fill_store("ax3", files=8, size_kib=6 * 1024, name="big")  # 48 MiB, several packs
    snapshots_before = _snapshots(lab, "ax3")
    packs_before = lab.packs("ax3")

    lab.root("ax3", "systemctl start --no-block drape-backup.service")
    wait_for(lambda: lab.packs("ax3") > packs_before, 60, "the backup to start uploading")
    lab.root("ax3", "systemctl kill --signal=SIGKILL drape-backup.service")
    wait_for(lambda: lab.root("ax3", "systemctl is-active drape-backup.service", check=False).strip()
             in ("failed", "inactive"), 30, "the killed unit to stop")
    assert _snapshots(lab, "ax3") == snapshots_before, "a killed run must not leave a snapshot"

    lab.root("ax3", "systemctl start drape-backup.service", timeout=300)  # blocks until the run ends
    assert lab.root("ax3", "systemctl show -p Result --value drape-backup.service").strip() == "success"
    after = _snapshots(lab, "ax3")
    assert len(set(after) - set(snapshots_before)) == 1  # one new snapshot (retention may forget the oldest)
    [checked] = service.check(lab.target, ["ax3"])
    assert checked.ok, checked.answer
    lab.root("ax3", f"rm -rf {STORE}/big")


def _snapshots(lab: BackupLab, source: str) -> list[str]:
    [listed] = service.snapshots(lab.target, [source], "pnpm-store")
    assert listed.ok, listed.error
    return [s["id"] for s in listed.answer["snapshots"]]
