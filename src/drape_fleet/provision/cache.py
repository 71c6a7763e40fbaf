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

from pathlib import PurePosixPath

from drape_fleet.config.provisioning import CacheSettings
from drape_fleet.provision.render import render

GUARD_SCRIPT = "/usr/local/sbin/drape-pnpm-store-guard"
GUARD_SERVICE = "drape-pnpm-store-guard.service"
GUARD_TIMER = "drape-pnpm-store-guard.timer"
USAGE_FILE = "/var/lib/drape/pnpm-store-usage"
CONF_FILE = "/etc/drape/pnpm-store.conf"


TIMER_FILE = "cache/drape-pnpm-store-guard.timer"
"""Plain file: the guard runs hourly (and 10 minutes after boot)."""


def store_conf(settings: CacheSettings) -> str:
    """Where the store is and its limit, for the guard and for people (shell-sourceable)."""
    return render("cache/pnpm-store.conf.j2", cache=settings, max_bytes=settings.max_size_gib * 1024**3)


def guard_script() -> str:
    return render("cache/drape-pnpm-store-guard.j2", conf_file=CONF_FILE, usage_file=USAGE_FILE,
                  usage_dir=str(PurePosixPath(USAGE_FILE).parent))


def guard_service() -> str:
    return render("cache/drape-pnpm-store-guard.service.j2", guard_script=GUARD_SCRIPT)
