"""What the deploys share: putting rendered templates and plain files from files/ on a host (owned by root
unless said otherwise; pyinfra compares checksums, so an unchanged file is no change), and telling the runner
something it must act on (``warn``)."""

from __future__ import annotations

from io import StringIO
from typing import Any

from pyinfra import logger
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, python, server

from drape_fleet.provision.notes import DeployNote, NoteKind, record
from drape_fleet.provision.render import files_path
from drape_fleet.provision.safety import SCRIPT, SCRIPT_FILE, arm_command, confirm_by_new_login
from drape_fleet.ssh import SshTarget

_WRITTEN: dict[str, list[Any]] = {}
"""Every file operation of this run, per host: the hardening deploy renews the integrity baseline when one
of them changed something."""


def written_files(host: Any) -> list[Any]:
    return list(_WRITTEN.get(host.name, []))


def record_change(op: Any) -> Any:
    """Count ``op`` among this run's file changes (for operations that write a host file other than through
    ``put_text``/``put_file``/``edit_line``)."""
    from pyinfra.context import host

    _WRITTEN.setdefault(host.name, []).append(op)
    return op


def edit_line(**kwargs: Any) -> Any:
    """``files.line``, counted among this run's file changes."""
    return record_change(files.line(**kwargs))


def put_text(name: str, text: str, dest: str, *, mode: str = "644", user: str = "root", group: str = "root",
             **kwargs: Any) -> Any:
    """Upload a rendered template (a builder's output)."""
    return record_change(files.put(name=name, src=StringIO(text), dest=dest, mode=mode, user=user, group=group,
                             create_remote_dir=True, **kwargs))


def put_file(name: str, plain_file: str, dest: str, *, mode: str = "644", **kwargs: Any) -> Any:
    """Upload a plain file from files/ as it is."""
    return record_change(files.put(name=name, src=str(files_path(plain_file)), dest=dest, mode=mode, user="root",
                             group="root", create_remote_dir=True, **kwargs))


def warn(host: Any, deploy: str, kind: NoteKind, message: str) -> None:
    """Log a warning for ops and record it as a structured note for the runner (drape_fleet.provision.notes)."""
    logger.warning(f"{host.print_prefix}{deploy}: {message}")
    record(DeployNote(host.name, deploy, kind, message))


def _confirm_or_fail(target: SshTarget, change: str, seconds: int) -> None:
    confirmation = confirm_by_new_login(target, change, timeout=max(10.0, seconds - 2.0))  # before the revert
    if not confirmation.ok:
        raise DeployError(f"{confirmation.detail}. The host restores the previous {change} files by itself within "
                          f"{seconds} s (drape-safe-apply), and ops can log in again then; fix the change before "
                          "provisioning again")
    logger.info(confirmation.detail)


def apply_with_safety_net(name: str, change: str, *, check: str, install: str, reload: str, files: list[str],
                          target: SshTarget, seconds: int) -> Any:
    """``check``, then arm the host's own rollback of ``files``, ``install`` and ``reload``; then a NEW login as
    ``target`` confirms (drape_fleet.provision.safety). Returns the apply operation (for ``_if``)."""
    put_file("drape-safe-apply: the way back from a change that locks ops out", SCRIPT_FILE, SCRIPT, mode="755")
    applied = server.shell(name=name, commands=[check, arm_command(change, seconds, reload, files), install, reload])
    python.call(name=f"A new login confirms the {change} change (else the host reverts in {seconds} s)",
                function=_confirm_or_fail, target=target, change=change, seconds=seconds,
                _if=applied.did_change)
    return applied
