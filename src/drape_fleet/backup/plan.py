"""What the agent (files/backup/drape-backup.py) is told: one plan per source, built purely from the fleet.

A *source* is a machine that backs up its own items into its own repository: every host (its items are the
catalogue's ``runs_on="host"`` ones) and ``ops``, the ops machine (``runs_on="ops"``: the PKI). Repositories are
``<target.path>/<environment>/<source>`` on the target. The plan carries paths, never secrets: restic reads the
password from ``password_file``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drape_fleet.backup.catalogue import Context, Item, backed_up
from drape_fleet.config.backup import BackupSettings, TargetSettings
from drape_fleet.config.models import FleetConfig
from drape_fleet.ssh import SshTarget

OPS_SOURCE = "ops"
AGENT = "/usr/local/sbin/drape-backup"
HOST_DIR = "/etc/drape/backup"
PLAN_FILE = f"{HOST_DIR}/plan.json"
PASSWORD_FILE = f"{HOST_DIR}/password"
HOST_KEY = f"{HOST_DIR}/id_ed25519"
HOST_KNOWN_HOSTS = f"{HOST_DIR}/known_hosts"
STATE_DIR = "/var/lib/drape/backup"
CACHE_DIR = "/var/cache/drape-backup"
SNAPSHOT_DIR = "/run/drape-backup"
"""Where an LVM snapshot is mounted (read-only) while a backup reads it."""
METRICS_FILE = "/var/lib/prometheus/node-exporter/drape_backup.prom"
"""node_exporter's textfile collector directory (Debian's and Ubuntu's prometheus-node-exporter default)."""
GRACE_HOURS = 2
"""An item is overdue once its last backup is older than its interval plus this (a slow run, a retry)."""


class NoBackupSection(ValueError):
    """The fleet file has no ``[backup]`` section."""


def settings_of(fleet: FleetConfig, source: str = "the fleet file") -> BackupSettings:
    if fleet.backup is None:
        raise NoBackupSection(f"{source} has no [backup] section: add one (docs/backups.md shows it), with the "
                              "target's address and its pinned host key")
    return fleet.backup


@dataclass(frozen=True)
class Access:
    """How a source reaches the target: its key and the file pinning the target's host key."""

    key: str
    known_hosts: str


def repository_url(target: TargetSettings, environment: str, source: str) -> str:
    """restic's SFTP repository (the path relative to the account's home, as on a Storage Box)."""
    return f"sftp:{target.user}@{target.host}:{target.path}/{environment}/{source}"


def target_ssh(target: TargetSettings, access: Access) -> SshTarget:
    """The target as the project's one SSH seam sees it: pinned host key, one key offered, batch mode."""
    return SshTarget(hostname=target.host, user=target.user, port=target.port, key=Path(access.key),
                     known_hosts=Path(access.known_hosts))


def sftp_command(target: TargetSettings, access: Access) -> str:
    """restic's ``sftp.command``: our ssh with every option of the seam, asking for the sftp subsystem."""
    ssh = target_ssh(target, access)
    return shlex.join([*ssh.ssh_args(), ssh.hostname, "-s", "sftp"])


def known_hosts_path(fleet_file: Path, target: TargetSettings) -> Path:
    """The file that pins the target's key, next to the fleet file (``target.known_hosts`` is relative)."""
    return (fleet_file.parent / target.known_hosts).resolve()


def items_for(source: str) -> tuple[Item, ...]:
    return backed_up("ops" if source == OPS_SOURCE else "host")


def item_plan(item: Item, ctx: Context, settings: BackupSettings) -> dict[str, Any]:
    assert item.where is not None and item.consistency is not None
    where = item.where(ctx)
    how = item.consistency(ctx)
    override = settings.items.get(item.name)
    every = (override.every_hours if override else None) or item.every_hours or settings.every_hours
    return {
        "name": item.name,
        "root": where.root,
        "path": where.path,
        "consistency": {"kind": how.kind, "lock_file": how.lock_file, "volume": how.volume, "mount": how.mount,
                        "export_argv": list(how.export_argv), "export_name": how.export_name},
        "every_hours": every,
        "max_age_s": (every + GRACE_HOURS) * 3600,
        "drill_max_age_s": (settings.drill_every_days * 24 + GRACE_HOURS) * 3600,
        "retention": settings.retention_of(item.name).flags(),
    }


def source_plan(fleet: FleetConfig, source: str, *, access: Access, password_file: str, pki_dir: str,
                state_dir: str = STATE_DIR, cache_dir: str = CACHE_DIR,
                metrics_file: str | None = METRICS_FILE) -> dict[str, Any]:
    """The agent's plan for ``source`` (a host's name, or ``ops``): pure, and the same on every run."""
    settings = settings_of(fleet)
    if source != OPS_SOURCE:
        fleet.host(source)  # KeyError naming the known hosts
    ctx = Context(fleet=fleet, pki_dir=pki_dir)
    target = settings.target
    return {
        "version": 1,
        "environment": fleet.environment.name,
        "source": source,
        "target": f"{target.user}@{target.host}:{target.port}",
        "repository": repository_url(target, fleet.environment.name, source),
        "sftp_command": sftp_command(target, access),
        "password_file": password_file,
        "cache_dir": cache_dir,
        "state_dir": state_dir,
        "metrics_file": metrics_file,
        "quiesce_timeout_s": settings.quiesce_timeout_s,
        "lvm_snapshot_size": settings.lvm_snapshot_size,
        "prune_every_days": settings.prune_every_days,
        "min_free_mib": settings.min_free_mib,
        "snapshot_dir": SNAPSHOT_DIR,
        "items": [item_plan(item, ctx, settings) for item in items_for(source)],
    }


def host_plan(fleet: FleetConfig, host: str) -> dict[str, Any]:
    """A host's plan as the backup deploy installs it (paths on the host)."""
    return source_plan(fleet, host, access=Access(HOST_KEY, HOST_KNOWN_HOSTS), password_file=PASSWORD_FILE,
                       pki_dir="/nonexistent")
