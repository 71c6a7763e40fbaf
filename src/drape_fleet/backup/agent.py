"""Running the agent (files/backup/drape-backup.py): on a host over SSH, or here on the ops machine.

On a host it is the deployed ``/usr/local/sbin/drape-backup`` with the host's own plan, key and password. Here
it is the same file with a plan made for the call: the ops machine's admin key, the target pinned from the
fleet file's directory, and the repository's password in a private temporary file (on /dev/shm where there is
one) removed after the call. The ops machine can open every repository of its environment, so listing, checking
and drilling work even when the host they belong to is gone.

The agent answers one JSON object; an ``error`` in it becomes a ``BackupError`` with the agent's own words.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drape_fleet import shell
from drape_fleet.backup import keys
from drape_fleet.backup.plan import AGENT, OPS_SOURCE, Access, known_hosts_path, settings_of, source_plan
from drape_fleet.environments import FleetTarget
from drape_fleet.provision.render import files_path
from drape_fleet.ssh import ssh_run

AGENT_FILE = "backup/drape-backup.py"
HOST_CALL_TIMEOUT_S = 6 * 3600


class BackupError(RuntimeError):
    def __init__(self, kind: str, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.result = result or {}


def agent_args(command: str, *, item: str | None = None, at: str | None = None, force: bool = False,
               dry_run: bool = False, due: bool = False) -> list[str]:
    """The agent's command line after the program (pure)."""
    args = [command]
    if item:
        args += ["--item", item]
    if at:
        args += ["--at", at]
    if force:
        args.append("--force")
    if dry_run:
        args.append("--dry-run")
    if due:
        args.append("--due")
    return args


def parse_answer(stdout: str, where: str, returncode: int, stderr: str) -> dict[str, Any]:
    """The agent's last JSON line; its ``error`` raised as ``BackupError``."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                answer: dict[str, Any] = json.loads(line)
            except ValueError:
                break
            if "error" in answer:
                error = answer["error"]
                raise BackupError(str(error.get("kind")), f"{where}: {error.get('message')}", answer)
            return answer
    tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
    raise BackupError("agent", f"{where}: the backup agent gave no answer (exit {returncode}): {tail}")


def on_host(target: FleetTarget, host: str, args: Sequence[str], *, timeout: float = HOST_CALL_TIMEOUT_S
            ) -> dict[str, Any]:
    """Run the deployed agent on ``host`` as root (sudo), over the project's SSH seam."""
    entry = target.fleet.host(host)
    command = f"sudo -n {AGENT} {shlex.join(args)}"
    result = ssh_run(target.ssh_target(entry), command, timeout=timeout, check=False)
    if result.returncode == 255:
        raise BackupError("host-unreachable", f"{host}: cannot reach the host over SSH: {result.stderr.strip()}. "
                          "Fix: check it is up (`invoke lab.status` / Robot) and its key is pinned")
    if "command not found" in result.stderr or result.returncode == 127:
        raise BackupError("not-deployed", f"{host}: the backup agent is not installed. Fix: "
                          f"`invoke provision --host {host} --only backup`")
    return parse_answer(result.stdout, host, result.returncode, result.stderr)


@contextmanager
def local_plan(target: FleetTarget, source: str) -> Iterator[Path]:
    """A plan for ``source`` usable from this machine, with its password in a private file, removed after."""
    settings = settings_of(target.fleet, str(target.env.fleet_file))
    env = target.env
    key, _ = keys.ensure_admin_key(env)
    pinned = known_hosts_path(env.fleet_file, settings.target)
    password = keys.repository_password(keys.passphrase(env), target.environment, source)
    shm = Path("/dev/shm")  # noqa: S108 (tmpfs: the password never reaches a disk; mkdtemp makes it private)
    base = shm if shm.is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="drape-backup-", dir=base))
    state = env.state_dir / "backup"
    try:
        password_file = work / "password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        plan = source_plan(target.fleet, source, access=Access(str(key), str(pinned)),
                           password_file=str(password_file), pki_dir=str(env.pki_dir),
                           state_dir=str(state / "state" / source), cache_dir=str(state / "cache"),
                           metrics_file=None)
        plan_file = work / "plan.json"
        plan_file.write_text(json.dumps(plan))
        yield plan_file
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


def here(target: FleetTarget, source: str, args: Sequence[str], *, timeout: float = HOST_CALL_TIMEOUT_S
         ) -> dict[str, Any]:
    """Run the agent on this machine for ``source`` (``ops``, or a host's repository read from here)."""
    with local_plan(target, source) as plan:
        argv = [sys.executable, str(files_path(AGENT_FILE)), "--plan", str(plan), *args]
        result = shell.run(argv, timeout=timeout, check=False)
    where = "ops machine" if source == OPS_SOURCE else f"{source}'s repository (from the ops machine)"
    return parse_answer(result.stdout, where, result.returncode, result.stderr)
