"""`invoke cache.status`: each host's store (size, files, age of its last fill) and its hit rate.

**Hit rate**, as measured here: of the installs previews on the host ran in the window (default the last 7 days)
that could use the store at all (pnpm projects with a lockfile), the share that found every package in it
(``shared store``: an offline install from the store) rather than going to the registry for some (``registry``).
Starts that installed nothing (``kept``: the workspace's dependencies unchanged) and npm/yarn projects (which do not
use the store) are counted beside it, not in it. Every start records one line in its workspace
(``.drape/installs.jsonl``: when, which path, how long); the lines are read from the host's previews and kept
workspaces, so the rate covers what the host still holds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drape_fleet.config.provisioning import CacheSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.store.job import STORE_MOUNT, SUMMARY_FILE
from drape_fleet.store.sources import (
    INSTALLS,
    PREVIEW_APP,
    WORKSPACE_KIND,
    read_only_job,
    read_small,
    read_volume,
)

HIT, MISS = "shared store", "registry"


@dataclass(frozen=True)
class HitRate:
    hits: int
    misses: int
    kept: int
    other: int

    @property
    def rate(self) -> float | None:
        counted = self.hits + self.misses
        return self.hits / counted if counted else None

    def describe(self) -> str:
        rate = "-" if self.rate is None else f"{self.rate:.0%}"
        return f"{rate} ({self.hits}/{self.hits + self.misses}; {self.kept} kept, {self.other} npm/yarn)"


def hit_rate(records: Iterable[Mapping[str, Any]], since: datetime) -> HitRate:
    """Count the installs recorded since ``since`` (pure; see the module's definition)."""
    counts: Counter[str] = Counter()
    for record in records:
        try:
            at = datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if at >= since:
            counts[str(record.get("path"))] += 1
    other = sum(n for path, n in counts.items() if path not in (HIT, MISS, "kept"))
    return HitRate(counts[HIT], counts[MISS], counts["kept"], other)


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    records = []
    for line in data.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def status_script() -> str:
    """What the status container prints: one JSON object (pure)."""
    return (f"cd {STORE_MOUNT} && bytes=$(du -sb . | cut -f1) && files=$(find . -type f | wc -l) && "
            "layouts=$(ls -d v* 2>/dev/null | tr '\\n' ' ') && "
            f"warm=$(cat {SUMMARY_FILE} 2>/dev/null || echo null) && "
            "printf '{\"bytes\": %s, \"files\": %s, \"layouts\": \"%s\", \"last_fill\": %s}\\n' "
            "\"$bytes\" \"$files\" \"$layouts\" \"$warm\"")


@dataclass(frozen=True)
class StoreStatus:
    host: str
    bytes: int
    files: int
    layouts: str
    last_fill: Mapping[str, Any] | None
    hits: HitRate

    def age(self, now: datetime) -> timedelta | None:
        finished = (self.last_fill or {}).get("finished")
        if not finished:
            return None
        return now - datetime.fromisoformat(str(finished).replace("Z", "+00:00"))


def store_status(engine: Engine, image: str, cache: CacheSettings, owner: str, *, window: timedelta,
                 max_bytes: int, now: datetime | None = None) -> StoreStatus:
    """Measure the store in a short read-only container and count the installs recorded on the host."""
    now = now or datetime.now(UTC)
    output = read_only_job(engine, image, status_script(), kind="status", user=f"{cache.uid}:{cache.uid}",
                           binds=[f"{cache.store_path}:{STORE_MOUNT}:ro"], wait_s=240, what="measure the store")
    measured = json.loads(output.strip().splitlines()[-1])
    records = _install_records(engine, owner, image, max_bytes)
    return StoreStatus(engine.name, int(measured["bytes"]), int(measured["files"]), measured["layouts"].strip(),
                       measured.get("last_fill"), hit_rate(records, now - window))


def _install_records(engine: Engine, owner: str, image: str, max_bytes: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    previews = engine.call(lambda api: api.containers(all=True, filters=L.owned_filter(owner, L.KIND_PREVIEW)),
                           "list previews")
    workdir = PREVIEW_APP.rsplit("/", 1)[0]
    for found in previews:
        records += parse_lines(read_small(engine, found["Id"], f"{workdir}/{INSTALLS}", max_bytes) or b"")
    volumes = engine.call(lambda api: api.volumes(filters=L.owned_filter(owner, WORKSPACE_KIND)),
                          "list workspaces").get("Volumes") or []
    for volume in volumes:
        records += parse_lines(read_volume(engine, volume["Name"], image, [INSTALLS], max_bytes).get(INSTALLS, b""))
    return records
