"""The ``[backup]`` section of a fleet file: where backups go, how often, how long they are kept.

What is backed up is not configuration but a catalogue (``drape_fleet.backup.items``): here only the target,
the schedule and the retention, with per-item overrides. Passwords and keys never appear here: the repository
passphrase is the secret ``backup_passphrase`` (environment or secrets file), the SSH keys live outside the
repository (docs/backups.md, "Key escrow")::

    [backup.target]
    host = "u123456.your-storagebox.de"      # a Hetzner Storage Box (SFTP on port 23) or any SSH server
    port = 23
    user = "u123456"
    path = "drape"                            # repositories live at <path>/<environment>/<source>
    known_hosts = "production.backup.known_hosts"   # the target's pinned key, next to this file
    storage_box_id = 123456                   # optional: usage and snapshots through the Hetzner API

    [backup.retention]                        # restic forget --keep-*, for every item unless overridden
    keep_daily = 7
    keep_weekly = 4

    [backup.items.pnpm-store]                 # per-item overrides (names from the catalogue)
    every_hours = 24
    retention = { keep_daily = 3 }
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.backup.catalogue import CATALOGUE
from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.endpoints import require_secure_endpoint

HETZNER_API_URL = "https://api.hetzner.com/v1"
"""Storage Boxes are managed through the Hetzner API (not the Cloud API's host); hcloud knows both."""

HostAddress = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")]
SshUser = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
RelativePath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")]
ItemName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
Keep = Annotated[int, Field(ge=0, le=1000)]


class Retention(FrozenModel):
    """restic's ``forget --keep-*`` policy. Snapshots outside every rule are removed after a successful backup."""

    keep_last: Keep = 0
    keep_hourly: Keep = 0
    keep_daily: Keep = 7
    keep_weekly: Keep = 4
    keep_monthly: Keep = 6

    @model_validator(mode="after")
    def _keeps_something(self) -> Self:
        if not any((self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly)):
            raise invalid("keeps_nothing", "every keep_* is 0, which would forget every snapshot", at="",
                          fix="keep at least one snapshot, e.g. keep_daily = 7")
        return self

    def flags(self) -> list[str]:
        """The ``restic forget`` flags, in a fixed order (zeros left out)."""
        pairs = [("--keep-last", self.keep_last), ("--keep-hourly", self.keep_hourly),
                 ("--keep-daily", self.keep_daily), ("--keep-weekly", self.keep_weekly),
                 ("--keep-monthly", self.keep_monthly)]
        return [part for flag, value in pairs if value for part in (flag, str(value))]


class ItemOverride(FrozenModel):
    every_hours: Annotated[int, Field(ge=1, le=24 * 7)] | None = None
    retention: Retention | None = None


class TargetSettings(FrozenModel):
    """Where the repositories live: an SFTP account (a Hetzner Storage Box, or any SSH server)."""

    host: HostAddress
    port: Annotated[int, Field(ge=1, le=65535)] = 23
    user: SshUser
    path: RelativePath = "drape"
    """Below the account's home: repositories are ``<path>/<environment>/<source>``."""
    known_hosts: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]+$")]
    """The target's pinned host key(s), a known_hosts file relative to the fleet file (`invoke backup.trust`)."""
    storage_box_id: Annotated[int, Field(ge=1)] | None = None
    """The Storage Box's id in the Hetzner API (Console → Storage Boxes): usage and snapshots; None: any SSH target."""
    api_endpoint: str = HETZNER_API_URL

    @model_validator(mode="after")
    def _endpoint_is_secure(self) -> Self:
        try:
            require_secure_endpoint(self.api_endpoint, default=HETZNER_API_URL)
        except ValueError:
            raise invalid("insecure_endpoint", f"{self.api_endpoint!r} would send the token unencrypted",
                          at="api_endpoint", fix=f"use https (plain http only to 127.0.0.1), or leave it out for "
                                                 f"{HETZNER_API_URL}") from None
        return self


class TargetSnapshots(FrozenModel):
    """The Storage Box's own snapshot plan: copies a compromised host cannot delete (they need the API token)."""

    max_snapshots: Annotated[int, Field(ge=1, le=100)] = 14
    hour: Annotated[int, Field(ge=0, le=23)] = 5
    minute: Annotated[int, Field(ge=0, le=59)] = 30


class BackupSettings(FrozenModel):
    target: TargetSettings
    every_hours: Annotated[int, Field(ge=1, le=24 * 7)] = 24
    """How often an item is backed up unless its override says otherwise (the host timer fires hourly)."""
    retention: Retention = Retention()
    items: dict[ItemName, ItemOverride] = Field(default_factory=dict)
    drill_every_days: Annotated[int, Field(ge=1, le=90)] = 7
    prune_every_days: Annotated[int, Field(ge=1, le=90)] = 7
    """`restic prune` (slow: it rewrites packs) after a successful run at most this often; `forget` every run."""
    quiesce_timeout_s: Annotated[int, Field(ge=5, le=3600)] = 300
    """The longest a backup waits for a writer to let go (the pnpm store's warm lock) before giving up."""
    lvm_snapshot_size: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[MGT]$")] = "20G"
    """Copy-on-write room for an LVM snapshot while a backup reads it (production hosts)."""
    min_free_mib: Annotated[int, Field(ge=1)] = 2048
    """A backup does not start when the target has less free space than this (it would fail hours later)."""
    target_snapshots: TargetSnapshots | None = None

    @model_validator(mode="after")
    def _items_are_known(self) -> Self:
        known = {item.name: item for item in CATALOGUE}
        for name in self.items:
            item = known.get(name)
            if item is None:
                choices = ", ".join(sorted(i.name for i in CATALOGUE if i.backed_up))
                raise invalid("unknown_item", f"{name!r} is not an item of the backup catalogue",
                              at=f"items.{name}", fix=f"use one of: {choices}")
            if not item.backed_up:
                raise invalid("item_not_backed_up", f"{name!r} is not backed up ({item.decision})",
                              at=f"items.{name}", fix="remove the override (docs/backups.md says why)")
        return self

    def retention_of(self, item: str) -> Retention:
        override = self.items.get(item)
        return override.retention if override and override.retention else self.retention
