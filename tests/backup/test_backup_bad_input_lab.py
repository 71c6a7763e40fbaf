"""What goes wrong in real life, on the lab: each is refused with a clear error and loses nothing.

ax1 is this module's host: each test puts back what it changes (password file, firewall table, target disk)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from backup_lab import STORE, BackupLab

from drape_fleet.backup import service
from drape_fleet.backup.agent import BackupError
from drape_fleet.backup.lab import target_address
from drape_fleet.backup.plan import PASSWORD_FILE
from drape_fleet.lab.state import lab_state_settings

pytestmark = pytest.mark.lab
FILLER = "/home/u-drape/filler"


@pytest.fixture(scope="module")
def ax1_backed_up(backup_lab: BackupLab) -> BackupLab:
    """ax1 with a store holding one package and a snapshot of it (once for the module: each test leaves the
    store as it found it)."""
    backup_lab.root("ax1", f"rm -rf {STORE}/pkgs {STORE}/more")
    backup_lab.fill_store("ax1", files=8, size_kib=64)
    [ran] = service.run(backup_lab.target, ["ax1"], "pnpm-store")
    assert ran.ok, ran.error
    return backup_lab


@pytest.fixture
def ax1(ax1_backed_up: BackupLab) -> Iterator[BackupLab]:
    yield ax1_backed_up
    ax1_backed_up.root("ax1", f"rm -rf {STORE}/more {STORE}.pre-restore-*")


def _snapshot_ids(lab: BackupLab) -> list[str]:
    [listed] = service.snapshots(lab.target, ["ax1"])
    assert listed.ok, listed.error
    return [s["id"] for s in listed.answer["snapshots"]]


@contextmanager
def _wrong_password(lab: BackupLab) -> Iterator[None]:
    lab.root("ax1", f"cp -p {PASSWORD_FILE} {PASSWORD_FILE}.good && printf 'not-the-password\\n' > {PASSWORD_FILE}")
    try:
        yield
    finally:
        lab.root("ax1", f"mv {PASSWORD_FILE}.good {PASSWORD_FILE}")


def test_wrong_password_is_named_and_nothing_is_overwritten(ax1: BackupLab) -> None:
    before_ids = _snapshot_ids(ax1)
    before = ax1.manifest("ax1")
    with _wrong_password(ax1):
        [ran] = service.run(ax1.target, ["ax1"], "pnpm-store")
        assert ran.error is not None and ran.error.kind == "wrong-password"
        assert "password does not open" in str(ran.error) and "nothing was changed" in str(ran.error)
        with pytest.raises(BackupError) as refused:
            service.restore(ax1.target, "ax1", "pnpm-store", "latest", force=True)
        assert refused.value.kind == "wrong-password"
    assert ax1.manifest("ax1") == before
    assert _snapshot_ids(ax1) == before_ids


def test_target_unreachable_is_named(ax1: BackupLab) -> None:
    address = target_address(lab_state_settings())
    ax1.root("ax1", "nft add table inet drape_test && nft add chain inet drape_test out "
                    "'{ type filter hook output priority 0; }' && "
                    f"nft add rule inet drape_test out ip daddr {address} tcp dport 23 reject with tcp reset")
    try:
        [ran] = service.run(ax1.target, ["ax1"], "pnpm-store")
    finally:
        ax1.root("ax1", "nft delete table inet drape_test")
    assert ran.error is not None and ran.error.kind == "unreachable", ran.error
    assert "unreachable" in str(ran.error) and str(address) in str(ran.error)


def test_target_full_is_named_and_the_last_snapshot_survives(ax1: BackupLab) -> None:
    """Less room than backup.min_free_mib (lab: 16 MiB): refused before restic starts, with the numbers."""
    free_kib = int(ax1.on_target("df -k --output=avail /home/u-drape | tail -1").strip())
    ax1.on_target(f"fallocate -l {max(free_kib - 8192, 1)}K {FILLER}")  # 8 MiB left
    try:
        ax1.fill_store("ax1", files=16, size_kib=512, name="more")  # 8 MiB that do not fit
        [ran] = service.run(ax1.target, ["ax1"], "pnpm-store")
    finally:
        ax1.on_target(f"rm -f {FILLER}")
    assert ran.error is not None and ran.error.kind == "target-full", ran.error
    assert "target is full" in str(ran.error) and "MiB free of" in str(ran.error)
    [checked] = service.check(ax1.target, ["ax1"])
    assert checked.ok, checked.answer


def test_restore_over_newer_data_is_refused_naming_what_would_be_lost(ax1: BackupLab) -> None:
    ax1.root("ax1", f"sleep 1; echo newer > {STORE}/pkgs/c/added.json && touch {STORE}/pkgs/a/b/f1")
    before = ax1.manifest("ax1")
    with pytest.raises(BackupError) as refused:
        service.restore(ax1.target, "ax1", "pnpm-store", "latest")
    message = str(refused.value)
    assert refused.value.kind == "newer-data"
    assert "2 file(s)" in message and "added.json" in message and "f1" in message and "--force" in message
    assert ax1.manifest("ax1") == before  # refused: nothing touched

    forced = service.restore(ax1.target, "ax1", "pnpm-store", "latest", force=True)
    assert forced["newer_files"] == 2
    kept = forced["kept_aside"]
    assert ax1.root("ax1", f"cat {kept}/pkgs/c/added.json").strip() == "newer"  # kept aside, not lost
    assert ax1.root("ax1", f"test -e {STORE}/pkgs/c/added.json && echo yes || echo no").strip() == "no"


def test_unknown_snapshot_and_item_are_refused(ax1: BackupLab) -> None:
    with pytest.raises(BackupError, match="neither latest, a snapshot id nor a time"):
        service.restore(ax1.target, "ax1", "pnpm-store", "not-a-snapshot")
    with pytest.raises(BackupError, match="backs up no item 'pki'"):
        service.restore(ax1.target, "ax1", "pki", "latest")


def test_a_target_with_another_host_key_is_refused(ax1: BackupLab) -> None:
    """The target's key is pinned (StrictHostKeyChecking yes, no accept-new): another key is never trusted."""
    pinned = "/etc/drape/backup/known_hosts"
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILQ29Cb/xnLBchvaoUetnBW/L7ykhhMuQmMcuMJhS+DE"
    names = ax1.root("ax1", f"cut -d' ' -f1 {pinned}").strip()
    ax1.root("ax1", f"cp -p {pinned} {pinned}.good && echo '{names} {other}' > {pinned}")
    try:
        [ran] = service.run(ax1.target, ["ax1"], "pnpm-store")
    finally:
        ax1.root("ax1", f"mv {pinned}.good {pinned}")
    assert ran.error is not None and ran.error.kind == "host-key", ran.error
    assert "not the pinned one" in str(ran.error)
