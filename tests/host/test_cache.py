"""The shared pnpm store: layout, ownership, mode, size limit."""

from __future__ import annotations

from typing import Any

from drape_fleet.config import FleetConfig


def test_store_layout_and_ownership(host: Any, fleet: FleetConfig) -> None:
    cache = fleet.provisioning.cache
    store = host.file(cache.store_path)
    assert store.is_directory
    assert (store.uid, store.gid, store.mode) == (cache.uid, cache.uid, 0o755)
    owner = host.user(cache.owner)
    assert owner.uid == cache.uid and owner.shell in ("/usr/sbin/nologin", "/sbin/nologin")


def test_store_is_under_its_limit(host: Any, fleet: FleetConfig) -> None:
    assert host.service("drape-pnpm-store-guard.timer").is_enabled
    assert host.service("drape-pnpm-store-guard.timer").is_running
    usage = dict(line.split("=", 1) for line in host.file("/var/lib/drape/pnpm-store-usage").content_string.split())
    assert int(usage["limit"]) == fleet.provisioning.cache.max_size_gib * 1024**3
    assert int(usage["used"]) <= int(usage["limit"])
