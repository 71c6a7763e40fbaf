#!/usr/bin/python3
"""drape-backup: back up, list, restore and drill this machine's items with restic (managed by drape-fleet).

Installed on every host by deploys/backup.py as /usr/local/sbin/drape-backup (its timers run ``run --due`` and
``drill --due``); the ops machine runs the same file for its own items (the PKI). What to back up, where, and
how is the plan (JSON, written by drape_fleet.backup.plan): this file has no fleet knowledge of its own.

    drape-backup [--plan FILE] run [--item NAME] [--due]
    drape-backup [--plan FILE] snapshots [--item NAME]
    drape-backup [--plan FILE] restore --item NAME --at latest|ID|TIME [--force] [--dry-run]
    drape-backup [--plan FILE] drill [--item NAME] [--due]
    drape-backup [--plan FILE] check | init

stdout carries one JSON object (the result, or ``{"error": {"kind", "message"}}`` with exit code 1); progress
goes to stderr. The repository password is read by restic from the plan's password file, never from argv.
Standard library only: it runs on any host with python3 and restic.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PLAN_FILE = "/etc/drape/backup/plan.json"
RESTIC_TIMEOUT_S = 6 * 3600
EXPORT_LIMIT_BYTES = 64 * 1024 * 1024
SHOWN = 10


class Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def say(message: str) -> None:
    print(f"drape-backup: {message}", file=sys.stderr, flush=True)


# -- restic: the one place it is run, and what its failures mean -------------------------------------------

def restic_env(plan: dict[str, Any]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "RESTIC_REPOSITORY": plan["repository"], "RESTIC_PASSWORD_FILE": plan["password_file"],
            "RESTIC_CACHE_DIR": plan["cache_dir"], "LC_ALL": "C"}


def restic(plan: dict[str, Any], args: list[str], *, stdin: bytes | None = None, cwd: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess[bytes]:
    argv = ["restic", "-o", f"sftp.command={plan['sftp_command']}", *args]
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, cwd=cwd, env=restic_env(plan),
                              timeout=RESTIC_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise Failure("no-restic", "restic is not installed: run `invoke provision --only backup`") from None
    if check and done.returncode != 0:
        failure = classify(plan, done.stderr.decode(errors="replace"), args[0])
        raise (ssh_diagnosis(plan) or failure) if failure.kind == "unreachable" else failure
    return done


def ssh_diagnosis(plan: dict[str, Any]) -> Failure | None:
    """Why the SFTP session did not start, asked of ssh itself: restic relays ssh's own words from a goroutine
    that may lose the race with its exit, leaving only "unable to start the sftp session, error: EOF" for a
    changed host key as for a target that is down. A refused key or host key is said; anything else: None."""
    if not plan["repository"].startswith("sftp:"):
        return None
    try:
        probe = subprocess.run(shlex.split(plan["sftp_command"]), stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    failure = classify(plan, probe.stderr.decode(errors="replace"), "connect")
    return failure if failure.kind in ("host-key", "not-authorized") else None


def classify(plan: dict[str, Any], stderr: str, doing: str) -> Failure:
    """restic's (and ssh's) words -> what happened and what to do. Order matters: the most specific first."""
    text = stderr.lower()
    where = f"{plan['repository']} ({plan['target']})"
    tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-3:])
    if "wrong password" in text or "no key found" in text:
        return Failure("wrong-password", f"the repository password does not open {where}; nothing was changed. "
                       "Fix: the password comes from the backup passphrase (secret backup_passphrase): restore "
                       "the escrowed one (docs/backups.md, 'Key escrow'), then `invoke provision --only backup`")
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return Failure("host-key", f"the target's SSH host key is not the pinned one ({where}). Fix: compare the "
                       "fingerprint with the provider's, then `invoke backup.trust --fingerprint SHA256:...`")
    if "permission denied (publickey" in text:
        return Failure("not-authorized", f"the target refused this machine's backup key ({where}). Fix: "
                       "`invoke backup.init` authorizes every host's key")
    if any(s in text for s in ("connection refused", "connection timed out", "no route to host",
                               "could not resolve", "network is unreachable", "connection closed",
                               "unable to start the sftp session", "operation timed out")):
        return Failure("unreachable", f"the backup target is unreachable: {where}: {tail}. Fix: check the "
                       "target's address and that the host may reach it on its SSH port; nothing was changed")
    if "no space left" in text or "quota exceeded" in text or ("sftp" in text and "failure" in text
                                                                and doing in ("backup", "init", "forget")):
        free = target_free(plan)
        return Failure("target-full", f"the backup target is full ({free}): {where}. The last good snapshot is "
                       "unharmed. Fix: free space on the target (`invoke backup.list`, then forget old "
                       "snapshots) or move to a larger Storage Box")
    if "unable to open config file" in text or "is there a repository" in text:
        return Failure("no-repository", f"there is no repository at {where}. Fix: `invoke backup.init`")
    if "repository is already locked" in text:
        return Failure("locked", f"another restic run holds the repository ({where}): {tail}. Fix: wait for it; "
                       "a lock left by a killed run is removed by the next run")
    return Failure("restic", f"restic {doing} failed: {tail or 'no message'}")


def target_space(plan: dict[str, Any]) -> tuple[int | None, str]:
    """The target's free bytes and a df line, asked through SFTP's statvfs (None: the target does not say)."""
    if not plan["repository"].startswith("sftp:"):
        return None, "free space unknown (not an SFTP target)"
    ssh = [a for a in shlex.split(plan["sftp_command"]) if a not in ("-s", "sftp")]
    sftp = ["sftp", *ssh[1:-1], "-b", "-", ssh[-1]]
    try:
        out = subprocess.run(sftp, input=b"df\n", capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None, "free space unknown"
    lines = [line.split() for line in out.stdout.decode(errors="replace").splitlines()
             if line.strip() and not line.startswith("sftp")]
    if len(lines) < 2 or len(lines[-1]) < 3 or not all(f.isdigit() for f in lines[-1][:3]):
        return None, "free space unknown"
    size_kib, used_kib, avail_kib = (int(f) for f in lines[-1][:3])
    mib = 1024
    return avail_kib * 1024, f"df: {avail_kib // mib} MiB free of {size_kib // mib} MiB, {used_kib // mib} MiB used"


def target_free(plan: dict[str, Any]) -> str:
    return target_space(plan)[1]


def require_room(plan: dict[str, Any]) -> None:
    """Refuse to start a backup the target has no room for (a Storage Box fills up silently)."""
    free, text = target_space(plan)
    if free is not None and free < plan["min_free_mib"] * 1024 * 1024:
        raise Failure("target-full", f"the backup target is full ({text}; a backup needs at least "
                      f"{plan['min_free_mib']} MiB free): {plan['repository']} ({plan['target']}). Nothing was "
                      "started; the last good snapshot is unharmed. Fix: free space on the target (forget old "
                      "snapshots) or move to a larger Storage Box")


def json_lines(data: bytes) -> list[dict[str, Any]]:
    found = []
    for line in data.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


# -- consistency: never a torn copy ---------------------------------------------------------------------------

def lock_quietly(lock_file: str, timeout_s: float) -> Any:
    path = Path(lock_file)
    if not path.exists():  # the backup deploy makes it; a writer that never ran leaves nothing to wait for
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.fchmod(fd, 0o644)
        parent = path.parent.stat()
        os.fchown(fd, parent.st_uid, parent.st_gid)
        os.close(fd)
    handle = path.open("rb")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() > deadline:
            handle.close()
            raise Failure("quiesce", f"a writer held {lock_file} for more than {timeout_s:.0f} s: no consistent "
                          "copy could be taken, nothing was backed up. Fix: run again when the warm job is done "
                          "(or raise backup.quiesce_timeout_s)")
        time.sleep(0.5)


def run_cmd(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, check=False, timeout=600)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise Failure("snapshot", f"{what} failed: `{shlex.join(argv)}`: {message}")


@contextlib.contextmanager
def consistent(plan: dict[str, Any], item: dict[str, Any]) -> Iterator[str]:
    """Yield the directory to copy ``item['path']`` from, consistent for as long as the copy runs."""
    how = item["consistency"]
    kind = how["kind"]
    if kind in ("none", "export"):
        yield item["root"]
    elif kind == "lock":
        handle = lock_quietly(how["lock_file"], float(plan["quiesce_timeout_s"]))
        say(f"{item['name']}: writers paused ({how['lock_file']} held)")
        try:
            yield item["root"]
        finally:
            handle.close()
    elif kind == "lvm":
        vg, lv = how["volume"].split("/")
        snap = f"{lv}-drape-backup"
        mountpoint = f"{plan.get('snapshot_dir', '/run/drape-backup')}/{item['name']}"
        with contextlib.suppress(Failure):  # a snapshot left by a killed run goes first
            run_cmd(["umount", mountpoint], "unmounting a stale snapshot")
        if subprocess.run(["lvs", f"{vg}/{snap}"], capture_output=True, check=False).returncode == 0:
            run_cmd(["lvremove", "-y", f"{vg}/{snap}"], "removing a stale snapshot")
        run_cmd(["lvcreate", "--snapshot", "--name", snap, "--size", plan["lvm_snapshot_size"], how["volume"]],
                "lvcreate (snapshot)")
        try:
            Path(mountpoint).mkdir(parents=True, exist_ok=True)
            fstype = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", f"/dev/{vg}/{snap}"],
                                    capture_output=True, check=False).stdout.decode().strip()
            options = "ro,nouuid,norecovery" if fstype == "xfs" else "ro,noload"
            run_cmd(["mount", "-o", options, f"/dev/{vg}/{snap}", mountpoint], "mounting the snapshot")
            say(f"{item['name']}: reading LVM snapshot {vg}/{snap} (writers never paused)")
            try:
                relative = os.path.relpath(item["root"], how["mount"])
                yield str(Path(mountpoint) / relative)
            finally:
                run_cmd(["umount", mountpoint], "unmounting the snapshot")
        finally:
            run_cmd(["lvremove", "-y", f"{vg}/{snap}"], "lvremove (snapshot)")
    else:
        raise Failure("plan", f"unknown consistency {kind!r} for {item['name']}")


# -- state and metrics (node_exporter's textfile collector) -------------------------------------------------

def load_state(plan: dict[str, Any]) -> dict[str, Any]:
    path = Path(plan["state_dir"]) / "state.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault("items", {})
    return data


def save_state(plan: dict[str, Any], state: dict[str, Any]) -> None:
    directory = Path(plan["state_dir"])
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(directory / "state.json", json.dumps(state, indent=1, sort_keys=True))
    metrics = Path(plan["metrics_file"]) if plan.get("metrics_file") else None
    if metrics is not None and metrics.parent.is_dir():  # node_exporter's package makes it; we never do
        write_atomic(metrics, render_metrics(plan, state))


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o644)
    temporary.replace(path)


METRICS = (
    ("drape_backup_last_success_timestamp_seconds", "last_success", "When the item's last backup succeeded."),
    ("drape_backup_last_attempt_timestamp_seconds", "last_attempt", "When the item's last backup was tried."),
    ("drape_backup_last_attempt_success", "last_ok", "1 if the item's last backup succeeded, else 0."),
    ("drape_backup_max_age_seconds", "max_age_s", "How old the last backup may be before it is overdue."),
    ("drape_backup_size_bytes", "size_bytes", "Bytes the last successful backup read."),
    ("drape_backup_added_bytes", "added_bytes", "Bytes the last successful backup added to the repository."),
    ("drape_backup_duration_seconds", "duration_s", "How long the last successful backup took."),
    ("drape_backup_drill_timestamp_seconds", "drill_time", "When the item's last restore drill ran."),
    ("drape_backup_drill_success", "drill_ok", "1 if the item's last restore drill matched its source, else 0."),
    ("drape_backup_drill_max_age_seconds", "drill_max_age_s", "How old the last drill may be."),
)


def render_metrics(plan: dict[str, Any], state: dict[str, Any]) -> str:
    lines = []
    for name, key, text in METRICS:
        samples = []
        for item in plan["items"]:
            value = state["items"].get(item["name"], {}).get(key)
            if key == "max_age_s":
                value = item["max_age_s"]
            elif key == "drill_max_age_s":
                value = item["drill_max_age_s"]
            if value is None:
                continue
            value = int(value) if isinstance(value, bool) else value
            samples.append(f'{name}{{item="{item["name"]}",source="{plan["source"]}"}} {value}')
        if samples:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", *samples]
    return "\n".join(lines) + "\n"


# -- commands ---------------------------------------------------------------------------------------------------

def chosen(plan: dict[str, Any], name: str | None) -> list[dict[str, Any]]:
    items = plan["items"]
    if name is None:
        return list(items)
    found = [i for i in items if i["name"] == name]
    if not found:
        names = ", ".join(i["name"] for i in items) or "none"
        raise Failure("unknown-item", f"{plan['source']} backs up no item {name!r} (it backs up: {names})")
    return found


def tag(item: dict[str, Any]) -> str:
    return f"item={item['name']}"


def backup_one(plan: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    base = ["backup", "--json", "--host", plan["source"], "--tag", tag(item)]
    how = item["consistency"]
    with consistent(plan, item) as root:
        if how["kind"] == "export":
            exported = subprocess.run(how["export_argv"], capture_output=True, check=False, timeout=600)
            if exported.returncode != 0 or len(exported.stdout) > EXPORT_LIMIT_BYTES:
                raise Failure("export", f"{item['name']}: the export failed or was too large: "
                              f"{exported.stderr.decode(errors='replace').strip()[-300:]}")
            done = restic(plan, [*base, "--stdin", "--stdin-filename", how["export_name"]], stdin=exported.stdout)
        else:
            if not (Path(root) / item["path"]).exists():
                raise Failure("no-data", f"{item['name']}: {Path(item['root']) / item['path']} does not exist: "
                              "nothing to back up (is the host provisioned?)")
            done = restic(plan, [*base, "--exclude-caches", item["path"]], cwd=root)
    summary = next((m for m in json_lines(done.stdout) if m.get("message_type") == "summary"), {})
    restic(plan, ["forget", "--host", plan["source"], "--tag", tag(item), *item["retention"]])
    return {"item": item["name"], "snapshot": summary.get("snapshot_id"),
            "size_bytes": summary.get("total_bytes_processed", 0), "added_bytes": summary.get("data_added", 0),
            "files": summary.get("total_files_processed", 0), "duration_s": round(time.time() - started, 2)}


def cmd_run(plan: dict[str, Any], name: str | None, due_only: bool) -> dict[str, Any]:
    state = load_state(plan)
    results, failures = [], []
    due = [i for i in chosen(plan, name) if not due_only or time.time() - (
        state["items"].get(i["name"], {}).get("last_success") or 0) >= i["every_hours"] * 3600 - 300]
    try:
        restic(plan, ["unlock"])  # only stale locks (a killed run's); a live run's lock stays
        if due:
            require_room(plan)
    except Failure:
        for item in due:  # the attempt counts, so BackupFailing sees it
            state["items"].setdefault(item["name"], {}).update(last_attempt=time.time(), last_ok=False)
        save_state(plan, state)
        raise
    for item in chosen(plan, name):
        record = state["items"].setdefault(item["name"], {})
        last = record.get("last_success") or 0
        if due_only and time.time() - last < item["every_hours"] * 3600 - 300:
            results.append({"item": item["name"], "skipped": "not due"})
            continue
        record["last_attempt"] = time.time()
        try:
            say(f"{item['name']}: backing up")
            result = backup_one(plan, item)
        except Failure as failure:
            record["last_ok"] = False
            failures.append({"item": item["name"], "kind": failure.kind, "message": failure.message})
            save_state(plan, state)
            continue
        record.update(last_ok=True, last_success=time.time(), size_bytes=result["size_bytes"],
                      added_bytes=result["added_bytes"], duration_s=result["duration_s"])
        save_state(plan, state)
        results.append(result)
    if not failures and time.time() - (state.get("last_prune") or 0) > plan["prune_every_days"] * 86400:
        say("pruning: removing data no snapshot needs (forgotten snapshots, a killed run's uploads)")
        try:
            restic(plan, ["prune"])
            state["last_prune"] = time.time()
            save_state(plan, state)
        except Failure as failure:
            failures.append({"item": "(prune)", "kind": failure.kind, "message": failure.message})
    if failures:
        first = failures[0]
        raise Failure(first["kind"], "; ".join(f"{f['item']}: {f['message']}" for f in failures))
    return {"source": plan["source"], "results": results}


def snapshot_list(plan: dict[str, Any], item: dict[str, Any] | None) -> list[dict[str, Any]]:
    args = ["snapshots", "--json", "--host", plan["source"]]
    if item is not None:
        args += ["--tag", tag(item)]
    done = restic(plan, args)
    raw = json.loads(done.stdout.decode() or "[]") or []
    out = []
    for snap in raw:
        tags = [t for t in snap.get("tags") or [] if t.startswith("item=")]
        out.append({"id": snap["id"], "short_id": snap["short_id"], "time": snap["time"],
                    "item": tags[0][5:] if tags else "", "paths": snap.get("paths", [])})
    return sorted(out, key=lambda s: s["time"])


def parse_time(text: str) -> float:
    """restic's RFC 3339 time (nanoseconds) -> seconds since the epoch."""
    head, _, rest = text.partition(".")
    zone = rest.lstrip("0123456789") if rest else text[19:]
    fraction = float("0." + rest[: len(rest) - len(zone)]) if rest else 0.0
    stamp = dt.datetime.fromisoformat(head[:19] + (zone.replace("Z", "+00:00") or "+00:00"))
    return stamp.timestamp() + fraction


def resolve(plan: dict[str, Any], item: dict[str, Any], at: str) -> dict[str, Any]:
    snaps = snapshot_list(plan, item)
    if not snaps:
        raise Failure("no-snapshot", f"{plan['source']} has no snapshot of {item['name']} yet: `invoke backup.run`")
    if at == "latest":
        return snaps[-1]
    by_id = [s for s in snaps if s["id"].startswith(at) or s["short_id"] == at]
    if by_id:
        return by_id[-1]
    try:
        moment = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise Failure("bad-at", f"--at {at!r} is neither latest, a snapshot id nor a time (2026-11-29T10:00Z)"
                      ) from None
    limit = (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()  # noqa: UP017 (python 3.10 hosts)
    before = [s for s in snaps if parse_time(s["time"]) <= limit]
    if not before:
        raise Failure("bad-at", f"no snapshot of {item['name']} at or before {at} (the oldest is {snaps[0]['time']})")
    return before[-1]


def walk(top: Path) -> Iterator[Path]:
    if top.is_file() or top.is_symlink():
        yield top
        return
    for directory, _dirs, names in os.walk(top):
        for name in names:
            yield Path(directory) / name


Node = tuple[str, int, float]
"""A file as a snapshot holds it: type, size, modification time."""


def snapshot_files(plan: dict[str, Any], snap: dict[str, Any], item: dict[str, Any]) -> dict[str, Node]:
    """Every node of the item in the snapshot: relative path -> (type, size, mtime)."""
    done = restic(plan, ["ls", "--json", snap["id"]])
    top = "/" + item["path"]
    found = {}
    for node in json_lines(done.stdout):
        path = node.get("path")
        if node.get("struct_type") != "node" or not isinstance(path, str):
            continue
        if path == top or path.startswith(top + "/"):
            found[path[len(top):].lstrip("/")] = (node.get("type", ""), int(node.get("size") or 0),
                                                   parse_time(node.get("mtime", "1970-01-01T00:00:00Z")))
    return found


def would_be_lost(live: Path, in_snapshot: dict[str, Node]) -> tuple[list[str], int, int]:
    """Files under ``live`` that the snapshot does not hold as they are now (added or changed since): what a
    restore would replace. (names, count, bytes)."""
    names, count, size = [], 0, 0
    if not live.exists():
        return names, count, size
    for path in walk(live):
        relative = "" if path == live else str(path.relative_to(live))
        info = path.lstat()
        kind, length, mtime = in_snapshot.get(relative, ("", -1, 0.0))
        same = kind == ("symlink" if path.is_symlink() else "file") and (
            kind == "symlink" or (length == info.st_size and abs(mtime - info.st_mtime) < 1e-5))
        if not same:
            count += 1
            size += info.st_size
            if len(names) < SHOWN:
                names.append(str(path))
    return names, count, size


def cmd_restore(plan: dict[str, Any], name: str, at: str, force: bool, dry_run: bool) -> dict[str, Any]:
    [item] = chosen(plan, name)
    snap = resolve(plan, item, at)
    live = Path(item["root"]) / item["path"]
    names, count, size = would_be_lost(live, snapshot_files(plan, snap, item))
    report: dict[str, Any] = {"item": item["name"], "snapshot": snap["short_id"], "snapshot_time": snap["time"],
                              "target": str(live), "newer_files": count, "newer_bytes": size, "newer_examples": names}
    if count and not force:
        raise Failure("newer-data", f"{live} holds data newer than snapshot {snap['short_id']} ({snap['time']}): "
                      f"{count} file(s), {size} bytes added or changed since would be lost, e.g. {', '.join(names)}. "
                      "Nothing was changed. Fix: choose a later --at, or pass --force (the current data is then "
                      "kept aside, not deleted)")
    if dry_run:
        return {**report, "dry_run": True}
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    staging = Path(item["root"]) / f".drape-restore-{item['name']}-{stamp}"
    staging.mkdir(parents=True, mode=0o700)
    try:
        restic(plan, ["restore", snap["id"], "--target", str(staging), "--verify"])
        restored = staging / item["path"]
        kept = None
        if live.exists() or live.is_symlink():
            kept = live.with_name(f"{live.name}.pre-restore-{stamp}")
            live.rename(kept)
        restored.rename(live)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sum(1 for _ in walk(live))
    return {**report, "restored_files": files, "kept_aside": str(kept) if kept else None,
            "seconds": round(time.time() - started, 2)}


def sha256(path: Path) -> str:
    if path.is_symlink():
        return "link:" + str(path.readlink())
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def drill_one(plan: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    snap = resolve(plan, item, "latest")
    moment = parse_time(snap["time"])
    scratch = Path(item["root"]) / f".drape-drill-{item['name']}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, mode=0o700)
    try:
        restic(plan, ["restore", snap["id"], "--target", str(scratch), "--verify"])
        if item["consistency"]["kind"] == "export":  # nothing live to compare with: restored and verified
            exported = scratch / item["consistency"]["export_name"]
            size = exported.stat().st_size if exported.exists() else 0
            return {"item": item["name"], "ok": size > 0, "snapshot": snap["short_id"], "snapshot_time": snap["time"],
                    "age_s": round(time.time() - moment), "size_bytes": size, "matched": 1 if size else 0,
                    "changed_since": 0, "mismatched": [], "missing": [], "seconds": round(time.time() - started, 2)}
        restored_top = scratch / item["path"]
        live_top = Path(item["root"]) / item["path"]
        matched, changed, mismatched, missing, size = 0, 0, [], [], 0
        seen = set()
        for restored in walk(restored_top):
            relative = restored.relative_to(restored_top)
            seen.add(relative)
            size += restored.lstat().st_size
            live = live_top / relative if relative.parts else live_top
            if not (live.exists() or live.is_symlink()):
                changed += 1  # deleted since the snapshot: the source moved on
                continue
            if live.lstat().st_mtime > moment + 1e-6:
                changed += 1
                continue
            if sha256(restored) == sha256(live):
                matched += 1
            else:
                mismatched.append(str(relative))
        for live in walk(live_top):
            relative = live.relative_to(live_top)
            if relative not in seen and live.lstat().st_mtime <= moment - 1 and len(missing) < 1000:
                missing.append(str(relative))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ok = not mismatched and not missing and matched + changed > 0
    return {"item": item["name"], "ok": ok, "snapshot": snap["short_id"], "snapshot_time": snap["time"],
            "age_s": round(time.time() - moment), "size_bytes": size, "matched": matched,
            "changed_since": changed, "mismatched": mismatched[:SHOWN], "missing": missing[:SHOWN],
            "seconds": round(time.time() - started, 2)}


def cmd_drill(plan: dict[str, Any], name: str | None, due_only: bool) -> dict[str, Any]:
    state = load_state(plan)
    results = []
    for item in chosen(plan, name):
        record = state["items"].setdefault(item["name"], {})
        if due_only and time.time() - (record.get("drill_time") or 0) < item["drill_max_age_s"] - 3 * 3600:
            results.append({"item": item["name"], "skipped": "not due"})
            continue
        try:
            result = drill_one(plan, item)
        except Failure as failure:
            result = {"item": item["name"], "ok": False, "error": {"kind": failure.kind, "message": failure.message}}
        record.update(drill_time=time.time(), drill_ok=bool(result["ok"]))
        save_state(plan, state)
        results.append(result)
    return {"source": plan["source"], "ok": all(r.get("ok", True) for r in results), "results": results}


def cmd_check(plan: dict[str, Any]) -> dict[str, Any]:
    restic(plan, ["unlock"])
    done = restic(plan, ["check"], check=False)
    text = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0 and ("wrong password" in text.lower() or "unable to open" in text.lower()):
        raise classify(plan, text, "check")
    return {"ok": done.returncode == 0 and "no errors were found" in text, "output": text.strip()[-2000:]}


def cmd_init(plan: dict[str, Any]) -> dict[str, Any]:
    probe = restic(plan, ["cat", "config"], check=False)
    if probe.returncode == 0:
        return {"created": False, "repository": plan["repository"]}
    failure = classify(plan, probe.stderr.decode(errors="replace"), "init")
    if failure.kind != "no-repository":
        raise failure
    restic(plan, ["init"])
    return {"created": True, "repository": plan["repository"]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="drape-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=PLAN_FILE)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "snapshots", "restore", "drill", "check", "init"):
        each = sub.add_parser(command)
        if command in ("run", "snapshots", "drill", "restore"):
            each.add_argument("--item", required=command == "restore")
        if command in ("run", "drill"):
            each.add_argument("--due", action="store_true")
        if command == "restore":
            each.add_argument("--at", default="latest")
            each.add_argument("--force", action="store_true")
            each.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        plan = json.loads(Path(args.plan).read_text())
        if args.command == "run":
            result = cmd_run(plan, args.item, args.due)
        elif args.command == "snapshots":
            item = chosen(plan, args.item)[0] if args.item else None
            result = {"source": plan["source"], "snapshots": snapshot_list(plan, item)}
        elif args.command == "restore":
            result = cmd_restore(plan, args.item, args.at, args.force, args.dry_run)
        elif args.command == "drill":
            result = cmd_drill(plan, args.item, args.due)
        elif args.command == "check":
            result = cmd_check(plan)
        else:
            result = cmd_init(plan)
    except Failure as failure:
        print(json.dumps({"error": {"kind": failure.kind, "message": failure.message}}))
        say(failure.message)
        return 1
    except OSError as exc:
        print(json.dumps({"error": {"kind": "os", "message": f"{exc.filename or ''}: {exc.strerror}"}}))
        return 1
    print(json.dumps(result))
    failed = result.get("ok") is False
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
