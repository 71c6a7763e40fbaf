"""The backup's secrets: one passphrase ops escrow, a password per repository derived from it, SSH keys.

- The **passphrase** is the secret ``backup_passphrase`` (``$DRAPE_BACKUP_PASSPHRASE`` or the secrets file,
  never the repository). The lab makes its own, in its state directory (git-ignored, like its PKI).
- Each repository (one per source: a host, or ``ops`` for the ops machine's items) has its own password,
  ``HMAC-SHA256(passphrase, "drape-fleet/restic/<environment>/<source>")`` in base64url: a host holds only its
  own repository's password, the PKI's never leaves the ops machine, and ops escrow one secret. By hand::

      printf %s "drape-fleet/restic/production/ax1" | openssl dgst -sha256 -hmac "$PASSPHRASE" -binary \\
        | basenc --base64url | tr -d '='

- The **admin key** is the ops machine's SSH key to the target (``$DRAPE_BACKUP_SSH_KEY``, default
  ``<state dir>/backup/id_ed25519``); it authorizes the hosts' own keys (made on each host, never copied).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from drape_fleet import shell
from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.environments import Environment
from drape_fleet.paths import project_root

SSH_KEY_VAR = "DRAPE_BACKUP_SSH_KEY"
LAB_PASSPHRASE_FILE = "backup/passphrase"  # noqa: S105 (a path, not a password)
MIN_PASSPHRASE = 16


class BackupKeyError(RuntimeError):
    """A secret the backup needs is missing or unusable; the message names it and the fix."""


def passphrase(env: Environment) -> str:
    if env.is_lab:
        return _lab_passphrase(env.state_dir / LAB_PASSPHRASE_FILE)
    try:
        value = load_secrets(repo_root=project_root()).value("backup_passphrase")
    except ConfigError as exc:
        raise BackupKeyError(str(exc)) from None
    if len(value) < MIN_PASSPHRASE:
        raise BackupKeyError(f"the backup passphrase is {len(value)} characters long: use at least "
                             f"{MIN_PASSPHRASE} (e.g. `openssl rand -base64 32`), and escrow it (docs/backups.md)")
    return value


def _lab_passphrase(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def repository_password(passphrase: str, environment: str, source: str) -> str:
    """The password of one repository (pure; the formula is in the module docstring)."""
    message = f"drape-fleet/restic/{environment}/{source}".encode()
    digest = hmac.new(passphrase.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def admin_key(env: Environment) -> Path:
    override = os.environ.get(SSH_KEY_VAR)
    return Path(override).expanduser() if override else env.state_dir / "backup" / "id_ed25519"


def ensure_admin_key(env: Environment) -> tuple[Path, bool]:
    """The admin key, made (ed25519, no passphrase: timers and tasks use it unattended) when missing."""
    key = admin_key(env)
    if key.exists():
        return key, False
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shell.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"drape-backup-admin@{env.name}", "-f",
               str(key)], timeout=30)
    return key, True
