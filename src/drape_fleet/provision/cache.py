"""The shared pnpm store that preview containers mount (read-only) from /srv/drape.

Contract with the runtime:
- path: ``/srv/drape/pnpm-store`` (on a production host /srv/drape is its own LVM volume; in the lab a volume
  standing in for it);
- owner ``drape-cache`` (uid and gid 10100 by default), mode 0755 on directories and 0644 on files: only the
  trusted job that fills the store (running as that uid) writes; previews mount it read-only and read it as
  any uid. pnpm in a preview then copies (or clones) from it, since a read-only store cannot be hardlinked;
- size limit: ``provisioning.cache.max_size_gib``. The hard limit in production is the volume's size; a guard
  (``drape-pnpm-store-guard.timer``, hourly) measures the store and logs a warning, and writes the figures that
  `invoke verify` checks, when the store outgrows the limit. Pruning (``pnpm store prune``) is left to the
  filling job, since it is safe only when no install runs.
"""

from __future__ import annotations

from drape_fleet.config.provisioning import CacheSettings

GUARD_SCRIPT = "/usr/local/sbin/drape-pnpm-store-guard"
GUARD_SERVICE = "drape-pnpm-store-guard.service"
GUARD_TIMER = "drape-pnpm-store-guard.timer"
USAGE_FILE = "/var/lib/drape/pnpm-store-usage"
CONF_FILE = "/etc/drape/pnpm-store.conf"


def store_conf(settings: CacheSettings) -> str:
    """Where the store is and its limit, for the guard and for people (shell-sourceable)."""
    return "\n".join([
        "# Managed by drape-fleet (deploys/cache.py).",
        f"STORE={settings.store_path}",
        f"OWNER={settings.owner}",
        f"UID={settings.uid}",
        f"MAX_BYTES={settings.max_size_gib * 1024**3}",
        "",
    ])


def guard_script() -> str:
    return "\n".join([
        "#!/bin/sh",
        "# Managed by drape-fleet (deploys/cache.py): measure the pnpm store against its limit.",
        "set -eu",
        f". {CONF_FILE}",
        'used=$(du -sb "$STORE" | cut -f1)',
        f"mkdir -p {USAGE_FILE.rsplit('/', 1)[0]}",
        f'printf "used=%s\\nlimit=%s\\nchecked=%s\\n" "$used" "$MAX_BYTES" "$(date -u +%FT%TZ)" > {USAGE_FILE}',
        'if [ "$used" -gt "$MAX_BYTES" ]; then',
        '  logger -p daemon.warning -t drape-pnpm-store -- "pnpm store $STORE uses $used bytes, limit $MAX_BYTES: '
        'prune it (pnpm store prune) when no install runs"',
        "  exit 1",
        "fi",
        "",
    ])


def guard_units() -> tuple[str, str]:
    service = "\n".join([
        "# Managed by drape-fleet (deploys/cache.py).",
        "[Unit]",
        "Description=Measure the shared pnpm store against its size limit",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={GUARD_SCRIPT}",
        "Nice=19",
        "IOSchedulingClass=idle",
        "",
    ])
    timer = "\n".join([
        "# Managed by drape-fleet (deploys/cache.py).",
        "[Unit]",
        "Description=Measure the shared pnpm store hourly",
        "",
        "[Timer]",
        "OnBootSec=10min",
        "OnUnitActiveSec=1h",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return service, timer
