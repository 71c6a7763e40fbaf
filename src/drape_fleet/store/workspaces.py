"""Each host's kept workspaces (the runtime's volumes ``drape-ws-*``, label ``drape.kind=workspace``): how many, how
large, when each was last started, and the pruning that keeps them within ``[previews.store] workspace_budget_gib``,
least recently started first.

A kept workspace holds a clone, its ``node_modules`` (reflinked from the store where the filesystem allows) and the
framework's caches: what makes the next start of the workspace skip its install. It is a cache: losing one costs a
slower start, never data. One that a container mounts (a preview running or being removed) is never removed: it is
left out of the plan, and the engine refuses the removal anyway (409) if one appeared meanwhile.

Sizes and last starts are measured by one short container per host (``du`` and the last line of each workspace's
``.drape/installs.jsonl``) that mounts the workspaces read-only, runs as the previews' user, with no network and
no capabilities. Pure planning (``plan``), thin execution through the engine seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docker.errors import APIError

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.store.sources import WORKSPACE_KIND, read_only_job

BATCH = 64
"""Workspaces measured by one container (mount points per container stay modest)."""
MEASURE = r"""
for dir in /kept/*/; do
  name=$(basename "$dir")
  kib=$(du -s -k "$dir" 2>/dev/null | cut -f1)
  last=$(tail -n 1 "$dir.drape/installs.jsonl" 2>/dev/null | sed -n 's/.*"at": *"\([^"]*\)".*/\1/p')
  echo "KEPT $name ${kib:-0} ${last:--}"
done
"""


@dataclass(frozen=True)
class KeptWorkspace:
    volume: str
    workspace: str
    kib: int
    last_start: str
    """ISO time of the last start its supervisor recorded ("" when none: treated as the oldest)."""
    in_use: bool


@dataclass(frozen=True)
class PrunePlan:
    remove: tuple[KeptWorkspace, ...]
    keep: tuple[KeptWorkspace, ...]
    budget_kib: int

    @property
    def total_kib(self) -> int:
        return sum(w.kib for w in self.remove + self.keep)

    @property
    def after_kib(self) -> int:
        return sum(w.kib for w in self.keep)


def plan(kept: Sequence[KeptWorkspace], budget_kib: int) -> PrunePlan:
    """Which workspaces to remove so the rest fit ``budget_kib`` (pure): the least recently started first, never
    one in use. If the ones in use alone pass the budget, every idle one goes and the plan says so (after > budget)."""
    total = sum(w.kib for w in kept)
    remove: list[KeptWorkspace] = []
    for workspace in sorted((w for w in kept if not w.in_use), key=lambda w: (w.last_start, w.volume)):
        if total <= budget_kib:
            break
        remove.append(workspace)
        total -= workspace.kib
    chosen = {w.volume for w in remove}
    return PrunePlan(tuple(remove), tuple(w for w in kept if w.volume not in chosen), budget_kib)


def parse_measure(output: str, labels: dict[str, dict[str, str]], in_use: set[str]) -> list[KeptWorkspace]:
    """The measuring container's lines, ``KEPT <volume> <KiB> <last start or ->`` (pure)."""
    found = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] != "KEPT" or parts[1] not in labels or not parts[2].isdigit():
            continue
        found.append(KeptWorkspace(parts[1], labels[parts[1]].get(L.WORKSPACE, parts[1]), int(parts[2]),
                                   "" if parts[3] == "-" else parts[3], parts[1] in in_use))
    return found


def kept_workspaces(engine: Engine, owner: str, image: str) -> list[KeptWorkspace]:
    """Every kept workspace on the host, measured; those a container mounts count against the budget too (they
    hold the disk) but are marked in use."""
    volumes = engine.call(lambda api: api.volumes(filters=L.owned_filter(owner, WORKSPACE_KIND)),
                          "list kept workspaces").get("Volumes") or []
    labels = {str(v["Name"]): dict(v.get("Labels") or {}) for v in volumes}
    containers = engine.call(lambda api: api.containers(all=True), "list containers")
    in_use = {str(m.get("Name")) for c in containers for m in c.get("Mounts") or [] if m.get("Type") == "volume"}
    names = sorted(labels)
    found: list[KeptWorkspace] = []
    for start in range(0, len(names), BATCH):
        found += parse_measure(_measure(engine, image, names[start:start + BATCH]), labels, in_use)
    return found


def _measure(engine: Engine, image: str, volumes: Sequence[str]) -> str:
    return read_only_job(engine, image, MEASURE, kind="measure", user="1000:1000",
                         binds=[f"{v}:/kept/{v}:ro" for v in volumes], wait_s=600, what="measure kept workspaces",
                         mem_limit="256m", pids_limit=64)


def prune(engine: Engine, chosen: Sequence[KeptWorkspace]) -> tuple[list[str], list[str]]:
    """Remove the planned workspaces; (removed, left with why) — one taken into use meanwhile is left (409)."""
    removed, left = [], []
    def remove(name: str) -> None:
        engine.call(lambda api: api.remove_volume(name), "remove a kept workspace")

    for workspace in chosen:
        try:
            remove(workspace.volume)
            removed.append(workspace.volume)
        except APIError as exc:
            left.append(f"{workspace.volume}: {exc.explanation or exc}")
    return removed, left
