"""`invoke lab.down`: remove everything one lab made, found by its label (hosts, the git server, networks,
volumes), the hosts' data disks (found by name, ``drape_fleet.lab.disks``) and its files.

The base and preview images stay: every lab on this machine shares them (they carry no lab's prefix), and
they are rebuilt only when their recipe changes, so the next ``up`` (of any lab) starts in seconds.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from drape_fleet.console import Log
from drape_fleet.lab import gitserver
from drape_fleet.lab.disks import lab_disks, remove_disk
from drape_fleet.lab.engine import engine_answers, engine_client, require_root
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings


@dataclass(frozen=True)
class DownReport:
    containers: list[str]
    volumes: list[str]
    networks: list[str]
    files: list[str]
    disks: list[str]

    @property
    def nothing(self) -> bool:
        return not (self.containers or self.volumes or self.networks or self.files or self.disks)


def planned_removal(settings: LabSettings) -> DownReport:
    """What ``down`` would remove (for the confirmation), found by label."""
    containers: list[str] = []
    volumes: list[str] = []
    networks: list[str] = []
    if engine_answers():
        client = engine_client()
        owned: dict[str, Any] = {"label": settings.label_filter}
        containers = sorted(c.name or "" for c in _containers(client, settings))
        volumes = sorted(v.name for v in client.volumes.list(filters=owned))
        networks = sorted(n.name or "" for n in client.networks.list(filters=owned))
    files = [str(settings.state_dir)] if settings.state_dir.exists() else []
    disks = [str(found.image) for found in lab_disks(settings)]
    return DownReport(containers, volumes, networks, files, disks)


def _containers(client: docker.DockerClient, settings: LabSettings) -> list[Container]:
    """The lab's containers: everything labelled with its prefix, and a git server made before the git server
    carried that label (it had only ``drape.lab.git``, and kept ``down`` from removing the public network)."""
    found: dict[str, Container] = {}
    for label in (settings.label_filter, f"{gitserver.GIT_LABEL}={settings.prefix}"):
        for container in client.containers.list(all=True, filters={"label": label}):
            found[container.id or ""] = container
    return sorted(found.values(), key=lambda c: c.name or "")


def down(settings: LabSettings, log: Log) -> DownReport:
    """Remove every container, volume and network labelled as this lab's, and the lab's files."""
    require_root("lab.down")
    plan = planned_removal(settings)
    if engine_answers():
        client = engine_client()
        owned: dict[str, Any] = {"label": settings.label_filter}
        for container in _containers(client, settings):
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
            try:
                network.remove()
            except NotFound:
                pass
            except APIError as exc:
                network.reload()
                attached = sorted(c.get("Name", "?") for c in (network.attrs.get("Containers") or {}).values())
                raise LabError(f"could not remove network {network.name}: {exc.explanation or exc}"
                               + (f" (still attached: {', '.join(attached)}; `docker rm -f` them if they are this "
                                  "lab's, then run lab.down again)" if attached else "")) from exc
    for found in lab_disks(settings):
        remove_disk(found, log)
    if settings.state_dir.exists():
        log(f"removing {settings.state_dir} (lab keys, fleet file)")
        shutil.rmtree(settings.state_dir)
    return plan
