"""Backups on the lab: the lab's stand-in Storage Box (made by lab.up) is the target, over SFTP on port 23 with
its host key pinned; every host provisioned (the backup deploy included), then `invoke backup.init`'s library
call authorizes the hosts' keys and makes the repositories. Like every lab fixture: FAIL, never skip."""

from __future__ import annotations

import pytest
from backup_lab import BackupLab

from drape_fleet.config import FleetConfig


@pytest.fixture(scope="session")
def backup_lab(lab_fleet: FleetConfig, provisioned_lab: object) -> BackupLab:
    from drape_fleet.backup import service
    from drape_fleet.environments import LAB, load

    target = load(LAB)
    try:
        outcomes = service.init(target, lambda message: print(f"[backup] {message}"))
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"backup.init on the lab failed: {exc}", pytrace=False)
    failed = [f"{o.source}: {o.error}" for o in outcomes if not o.ok]
    if failed:
        pytest.fail("backup.init on the lab failed:\n" + "\n".join(failed), pytrace=False)
    return BackupLab(target)
