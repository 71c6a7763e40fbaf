"""Changes that can lock ops out (sshd, nftables) applied with a safety net, as ``netplan try`` does.

Before the change, the host keeps a copy of the files it replaces and arms a timer of its own
(``drape-safe-apply arm``: a transient systemd timer). After the change, this machine opens a NEW SSH
connection with the deploy's own credentials (the one ``SshTarget``; never the connection pyinfra holds, which
a reload leaves alive) and, over that connection, confirms. Without a confirmation the timer puts the old files
back and reloads: the host reverts by itself, and ops can log in again. The commands are built here (pure);
the script is ``files/base/drape-safe-apply``.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from drape_fleet import shell
from drape_fleet.ssh import SshTarget

SCRIPT = "/usr/local/sbin/drape-safe-apply"
SCRIPT_FILE = "base/drape-safe-apply"
"""Plain file in files/: arm, confirm, restore."""
FRESH_CONNECTION = (("ControlMaster", "no"), ("ControlPath", "none"))
"""A confirmation must be a login made after the change, never a multiplexed old one."""


def arm_command(change: str, seconds: int, reload: str, files: Sequence[str]) -> str:
    """Keep ``files`` as they are and restore them (then run ``reload``) after ``seconds`` unless confirmed."""
    return shlex.join([SCRIPT, "arm", change, str(seconds), reload, *files])


def confirm_command(change: str, user: str) -> str:
    sudo = "" if user == "root" else "sudo -n "
    return f"{sudo}{shlex.join([SCRIPT, 'confirm', change])}"


@dataclass(frozen=True)
class Confirmation:
    ok: bool
    detail: str


RESTARTING = ("Connection refused", "Connection reset", "Connection closed by")
"""What a new login meets while sshd re-executes itself after a reload (it closes its listening socket for a
moment, longer on a loaded host): worth another try. Anything else (a refused key, a timeout) is an answer."""


def confirm_by_new_login(target: SshTarget, change: str, *, timeout: float = 30) -> Confirmation:
    """Log in afresh as ``target`` says and confirm ``change`` over that login, trying again while sshd restarts
    (for at most ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            result = shell.run(target.argv(confirm_command(change, target.user), extra=FRESH_CONNECTION),
                               timeout=max(left, 1), check=False)
        except shell.CommandFailed as exc:  # timed out: no answer is no confirmation
            result = shell.Result(exc.returncode, "", str(exc))
        if result.ok:
            return Confirmation(True, f"{target.user}@{target.hostname} logged in anew and confirmed {change}")
        why = (result.stderr.strip() or result.stdout.strip())[-300:] or f"exit {result.returncode}"
        if not any(sign in why for sign in RESTARTING) or time.monotonic() + 0.5 >= deadline:
            return Confirmation(False, f"a new login as {target.user}@{target.hostname}:{target.port} failed "
                                       f"after the {change} change ({why})")
        time.sleep(0.5)
