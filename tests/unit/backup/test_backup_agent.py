"""The agent (files/backup/drape-backup.py) run as hosts run it, with the real restic, against a local
repository: what it backs up, refuses, restores, drills and exports as metrics. No network, no lab."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drape_fleet.provision.render import files_path

AGENT = files_path("backup/drape-backup.py")


def agent(plan: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, str(AGENT), "--plan", str(plan), *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **(env or {})})
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """A source with a store under /srv-like root, a local repository, and a plan that points at them."""
    root = tmp_path / "srv"
    store = root / "pnpm-store"
    (store / "v3" / "files").mkdir(parents=True)
    for index in range(5):
        (store / "v3" / "files" / f"blob{index}").write_bytes(os.urandom(4096 + index))
    (store / "v3" / "index.json").write_text('{"left-pad": "1.3.0"}')
    (store / ".warm.lock").touch()
    password = tmp_path / "password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    plan = {
        "version": 1, "environment": "test", "source": "ax9", "target": "local",
        "repository": str(tmp_path / "repo"), "sftp_command": "false", "password_file": str(password),
        "cache_dir": str(tmp_path / "cache"), "state_dir": str(tmp_path / "state"),
        "metrics_file": str(tmp_path / "textfile" / "drape_backup.prom"), "quiesce_timeout_s": 1,
        "lvm_snapshot_size": "1G", "prune_every_days": 7, "min_free_mib": 16, "snapshot_dir": str(tmp_path / "run"),
        "items": [{"name": "pnpm-store", "root": str(root), "path": "pnpm-store",
                   "consistency": {"kind": "lock", "lock_file": str(store / ".warm.lock"), "volume": "", "mount": "",
                                   "export_argv": [], "export_name": ""},
                   "every_hours": 24, "max_age_s": 93600, "drill_max_age_s": 612000,
                   "retention": ["--keep-last", "3"]}],
    }
    (tmp_path / "textfile").mkdir()  # node_exporter's package makes its textfile directory
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    code, answer = agent(plan_file, "init")
    assert code == 0 and answer["created"], answer
    return {"plan": plan_file, "data": plan, "store": store, "tmp": tmp_path}


def _metrics(world: dict[str, Any]) -> dict[str, float]:
    found = {}
    for line in Path(world["data"]["metrics_file"]).read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_run_backs_up_the_item_and_exports_its_age_and_size(world: dict[str, Any]) -> None:
    code, answer = agent(world["plan"], "run")
    assert code == 0, answer
    [result] = answer["results"]
    assert result["item"] == "pnpm-store" and result["files"] == 7 and result["snapshot"]
    metrics = _metrics(world)
    labels = '{item="pnpm-store",source="ax9"}'
    assert metrics[f"drape_backup_last_attempt_success{labels}"] == 1
    assert metrics[f"drape_backup_max_age_seconds{labels}"] == 93600
    assert metrics[f"drape_backup_size_bytes{labels}"] == result["size_bytes"] > 20000
    assert metrics[f"drape_backup_last_success_timestamp_seconds{labels}"] > 1.7e9

    code, again = agent(world["plan"], "run", "--due")  # the hourly timer: not due for 24 hours
    assert code == 0 and again["results"] == [{"item": "pnpm-store", "skipped": "not due"}]


def test_a_writer_holding_the_lock_stops_the_copy_instead_of_tearing_it(world: dict[str, Any]) -> None:
    with (world["store"] / ".warm.lock").open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, answer = agent(world["plan"], "run")
    assert code == 1 and answer["error"]["kind"] == "quiesce"
    assert "held" in answer["error"]["message"] and "nothing was backed up" in answer["error"]["message"]
    assert _metrics(world)['drape_backup_last_attempt_success{item="pnpm-store",source="ax9"}'] == 0
    code, answer = agent(world["plan"], "run")  # the writer is done: the next run copies
    assert code == 0, answer


def test_restore_refuses_newer_data_then_keeps_it_aside_with_force(world: dict[str, Any]) -> None:
    assert agent(world["plan"], "run")[0] == 0
    (world["store"] / "v3" / "index.json").write_text('{"left-pad": "1.3.1"}')
    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--at", "latest")
    assert code == 1 and answer["error"]["kind"] == "newer-data"
    assert "1 file(s)" in answer["error"]["message"] and "index.json" in answer["error"]["message"]
    assert "1.3.1" in (world["store"] / "v3" / "index.json").read_text()  # refused: untouched

    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--at", "latest", "--force")
    assert code == 0, answer
    assert "1.3.0" in (world["store"] / "v3" / "index.json").read_text()
    assert "1.3.1" in (Path(answer["kept_aside"]) / "v3" / "index.json").read_text()
    # Restored data is the snapshot's (new ctimes notwithstanding): restoring it again loses nothing.
    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--at", "latest", "--dry-run")
    assert code == 0 and answer["newer_files"] == 0, answer


def test_restore_at_a_time_picks_the_snapshot_before_it(world: dict[str, Any]) -> None:
    assert agent(world["plan"], "run")[0] == 0
    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--at", "2001-01-01T00:00Z", "--dry-run")
    assert code == 1 and answer["error"]["kind"] == "bad-at" and "the oldest is" in answer["error"]["message"]
    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--at", "2999-01-01T00:00Z", "--dry-run")
    assert code == 0 and answer["dry_run"] and answer["newer_files"] == 0


def test_drill_matches_the_source_and_catches_a_silent_difference(world: dict[str, Any]) -> None:
    assert agent(world["plan"], "run")[0] == 0
    code, answer = agent(world["plan"], "drill")
    [report] = answer["results"]
    assert code == 0 and report["ok"] and report["matched"] == 7 and report["changed_since"] == 0
    blob = world["store"] / "v3" / "files" / "blob2"
    stat = blob.stat()
    blob.write_bytes(os.urandom(4098))  # same size, different bytes, old mtime: only checksums see it
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, answer = agent(world["plan"], "drill")
    [report] = answer["results"]
    assert code == 1 and not report["ok"] and report["mismatched"] == ["v3/files/blob2"]
    assert _metrics(world)['drape_backup_drill_success{item="pnpm-store",source="ax9"}'] == 0


def test_wrong_password_says_so_and_changes_nothing(world: dict[str, Any]) -> None:
    assert agent(world["plan"], "run")[0] == 0
    Path(world["data"]["password_file"]).write_text("wrong\n")
    code, answer = agent(world["plan"], "restore", "--item", "pnpm-store", "--force")
    assert code == 1 and answer["error"]["kind"] == "wrong-password"
    assert "nothing was changed" in answer["error"]["message"]
    code, answer = agent(world["plan"], "run")  # the failed attempt is exported for BackupFailing
    assert code == 1 and answer["error"]["kind"] == "wrong-password"
    assert _metrics(world)['drape_backup_last_attempt_success{item="pnpm-store",source="ax9"}'] == 0


def test_lvm_snapshot_is_made_read_and_removed(world: dict[str, Any]) -> None:
    """Production's path, with lvcreate & co. replaced by scripts that log their argv (no device-mapper here):
    the snapshot is made before the copy, mounted read-only (XFS: nouuid, norecovery), read, and removed."""
    tools = world["tmp"] / "bin"
    tools.mkdir()
    log = world["tmp"] / "calls.log"
    root = world["data"]["items"][0]["root"]
    for name, body in {
        "lvs": "exit 5",  # no stale snapshot
        "lvcreate": "", "lvremove": "", "umount": "",
        "blkid": "echo xfs",
        "mount": f'mkdir -p "$4" && cp -a {root}/. "$4"/',  # stands in for mounting the snapshot
    }.items():
        script = tools / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        script.chmod(0o755)
    data = world["data"]
    data["items"][0]["consistency"] = {"kind": "lvm", "volume": "vg0/drape", "mount": root, "lock_file": "",
                                       "export_argv": [], "export_name": ""}
    world["plan"].write_text(json.dumps(data))
    code, answer = agent(world["plan"], "run", env={"PATH": f"{tools}:{os.environ['PATH']}"})
    assert code == 0, answer
    mountpoint = f"{data['snapshot_dir']}/pnpm-store"
    calls = [line for line in log.read_text().splitlines() if not line.startswith("umount") or "stale" not in line]
    assert calls == [
        f"umount {mountpoint}",  # a stale mount of a killed run goes first (none here)
        "lvs vg0/drape-drape-backup",
        "lvcreate --snapshot --name drape-drape-backup --size 1G vg0/drape",
        "blkid -o value -s TYPE /dev/vg0/drape-drape-backup",
        f"mount -o ro,nouuid,norecovery /dev/vg0/drape-drape-backup {mountpoint}",
        f"umount {mountpoint}",
        "lvremove -y vg0/drape-drape-backup",
    ]
    assert answer["results"][0]["files"] == 7


def test_no_textfile_directory_no_metrics_and_none_made(world: dict[str, Any]) -> None:
    """Without node_exporter's directory (no monitoring deploy yet) the agent writes no metrics and does not make
    the directory itself: one made with the agent's private umask would hide every textfile from node_exporter."""
    textfile = Path(world["data"]["metrics_file"]).parent
    textfile.rmdir()
    code, answer = agent(world["plan"], "run")
    assert code == 0, answer
    assert not textfile.exists()


@pytest.mark.parametrize(("ssh_says", "kind"), [("Host key verification failed.", "host-key"),
                                                ("u@target: Permission denied (publickey).", "not-authorized"),
                                                ("", "unreachable")])
def test_a_failed_sftp_session_is_named_by_ssh_itself(world: dict[str, Any], ssh_says: str, kind: str) -> None:
    """restic relays ssh's words from a goroutine that can lose the race with its exit ("unable to start the sftp
    session, error: EOF" alone): the agent asks ssh once more and names the cause it gives."""
    tmp = world["tmp"]
    first = tmp / "restic-asked"
    ssh = tmp / "ssh"
    ssh.write_text(f"#!/bin/sh\n# restic's own call: silent, as when its relay of ssh's words was lost\n"
                   f"if [ ! -e {first} ]; then touch {first}; exit 255; fi\n"
                   f"[ -n '{ssh_says}' ] && echo '{ssh_says}' >&2\nexit 255\n")
    ssh.chmod(0o755)
    plan = {**world["data"], "repository": "sftp:u@target:repo", "sftp_command": f"{ssh} u@target -s sftp"}
    world["plan"].write_text(json.dumps(plan))
    code, answer = agent(world["plan"], "run", "--item", "pnpm-store")
    assert code != 0 and answer["error"]["kind"] == kind, answer
    assert first.exists()
