"""`invoke lab.down`: remove everything one lab made, found by its label, and its files.

The base and preview images stay: every lab on this machine shares them (they carry no lab's prefix), and
they are rebuilt only when their recipe changes, so the next ``up`` (of any lab) starts in seconds.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from typing import Any

from docker.errors import APIError, NotFound

from drape_fleet.console import Log
from drape_fleet.lab.engine import engine_answers, engine_client, require_root
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings


@dataclass(frozen=True)
class DownReport:
    containers: list[str]
    volumes: list[str]
    networks: list[str]
    files: list[str]

    @property
    def nothing(self) -> bool:
        return not (self.containers or self.volumes or self.networks or self.files)


def planned_removal(settings: LabSettings) -> DownReport:
    """What ``down`` would remove (for the confirmation), found by label."""
    containers: list[str] = []
    volumes: list[str] = []
    networks: list[str] = []
    if engine_answers():
        client = engine_client()
        owned: dict[str, Any] = {"label": settings.label_filter}
        containers = sorted(c.name or "" for c in client.containers.list(all=True, filters=owned))
        volumes = sorted(v.name for v in client.volumes.list(filters=owned))
        networks = sorted(n.name or "" for n in client.networks.list(filters=owned))
    files = [str(settings.state_dir)] if settings.state_dir.exists() else []
    return DownReport(containers, volumes, networks, files)


def down(settings: LabSettings, log: Log) -> DownReport:
    """Remove every container, volume and network labelled as this lab's, and the lab's files."""
    require_root("lab.down")
    plan = planned_removal(settings)
    if engine_answers():
        client = engine_client()
        owned: dict[str, Any] = {"label": settings.label_filter}
        for container in client.containers.list(all=True, filters=owned):
            log(f"removing container {container.name}")
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
        for volume in client.volumes.list(filters=owned):
            log(f"removing volume {volume.name}")
            try:
                volume.remove(force=True)
            except (NotFound, APIError) as exc:
                raise LabError(f"could not remove volume {volume.name}: {exc}") from exc
        for network in client.networks.list(filters=owned):
            log(f"removing network {network.name}")
            with contextlib.suppress(NotFound):
                network.remove()
    if settings.state_dir.exists():
        log(f"removing {settings.state_dir} (lab keys, fleet file)")
        shutil.rmtree(settings.state_dir)
    return plan
