"""Every piece of state the fleet keeps outside git, and what we do about it: one entry per item.

An entry says where the item lives, whether it is backed up (and then from where, and how a consistent copy is
taken) or why it is safe to lose. docs/backups.md is written from the same facts, and a test keeps the two in
step. Standard library only: the configuration checks item names against this list at load time.

Where an item lives is computed from the fleet (``Where``): the pnpm store's path comes from the cache
settings, the PKI's from the environment. How a consistent copy is taken (``Consistency``):

- ``lock``: hold the lock every writer of the item takes (the pnpm store's ``.warm.lock``: the warm job and
  prune take it), waiting at most ``backup.quiesce_timeout_s``; the copy is made while no writer runs;
- ``lvm``: on hosts whose volumes we manage (production), an LVM snapshot of the volume holding the item,
  mounted read-only for the copy and removed after it: writers never wait;
- ``export``: the item is read through its owner's own export (stdout, stored as one file), never copied
  from under a running writer;
- ``none``: nothing writes the item while a backup can run (said why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from drape_fleet.config.models import FleetConfig

Decision = Literal["backed up", "not backed up", "pending"]
RunsOn = Literal["ops", "host"]
ConsistencyKind = Literal["none", "lock", "lvm", "export"]


@dataclass(frozen=True)
class Where:
    """An item's data: ``root`` (absolute) and the ``path`` under it that is copied; restic stores ``path``
    relative to ``root``, so a copy read from an LVM snapshot mounted elsewhere restores to the same place."""

    root: str
    path: str

    @property
    def absolute(self) -> str:
        return str(PurePosixPath(self.root) / self.path)


@dataclass(frozen=True)
class Consistency:
    kind: ConsistencyKind
    lock_file: str = ""
    """``lock``: the file whose flock(2) every writer of the item holds."""
    volume: str = ""
    """``lvm``: ``vg/lv`` of the volume that holds the item, and where it is mounted (``mount``)."""
    mount: str = ""
    export_argv: tuple[str, ...] = ()
    """``export``: the command that prints the item (run as root on the item's machine)."""
    export_name: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Context:
    """What an item's location depends on: the fleet file, and (for ops items) the environment's PKI dir."""

    fleet: FleetConfig
    pki_dir: str


@dataclass(frozen=True)
class Item:
    name: str
    title: str
    decision: Decision
    lives: str
    """Where it lives, for people (the docs' table)."""
    why: str
    """Why it is backed up, or why it is safe to lose."""
    restore: str = ""
    """What a restore means and when ops do it (backed-up items)."""
    runs_on: RunsOn | None = None
    where: Callable[[Context], Where] | None = None
    consistency: Callable[[Context], Consistency] | None = None
    every_hours: int | None = None
    """The default interval when the fleet file does not override it (None: ``backup.every_hours``)."""

    @property
    def backed_up(self) -> bool:
        return self.decision == "backed up"


def _pki_where(ctx: Context) -> Where:
    directory = PurePosixPath(ctx.pki_dir)
    return Where(str(directory.parent), directory.name)


def _pki_consistency(ctx: Context) -> Consistency:
    return Consistency("none", reason="only `invoke pki.*` writes it, on the ops machine that runs the backup, "
                                      "and not at the same time")


def _store_where(ctx: Context) -> Where:
    store = PurePosixPath(ctx.fleet.provisioning.cache.store_path)
    return Where(str(store.parent), store.name)


def _store_consistency(ctx: Context) -> Consistency:
    store = ctx.fleet.provisioning.cache.store_path
    storage = ctx.fleet.provisioning.storage
    if storage.manage_volumes:
        holding = [v for v in storage.volumes if store == v.mount or store.startswith(v.mount.rstrip("/") + "/")]
        if holding:
            volume = max(holding, key=lambda v: len(v.mount))
            return Consistency("lvm", volume=f"{storage.volume_group}/{volume.name}", mount=volume.mount)
    return Consistency("lock", lock_file=f"{store}/.warm.lock",
                       reason="the warm job and prune hold this lock while they write the store")


CATALOGUE: tuple[Item, ...] = (
    Item(
        name="pki",
        title="Docker API CA, its key, the hosts' server and the backend's client certificates",
        decision="backed up", runs_on="ops", where=_pki_where, consistency=_pki_consistency, every_hours=24,
        lives="the ops machine: the environment's PKI directory (~/.config/drape-fleet/pki; lab: .lab/pki)",
        why="irreplaceable: a new CA means a new client certificate for the backend and a new server "
            "certificate on every host at once; with the CA restored, a rebuilt host gets a certificate the "
            "backend already trusts and the backend keeps its own",
        restore="onto a new ops machine (or after losing the directory), before `invoke provision` of any host: "
                "`invoke backup.restore --ops --item pki --at latest`",
    ),
    Item(
        name="pnpm-store",
        title="the warmed shared pnpm store",
        decision="backed up", runs_on="host", where=_store_where, consistency=_store_consistency,
        lives="every host: /srv/drape/pnpm-store (provisioning.cache.store_path)",
        why="not precious (every package can be fetched again) but costly: a rebuilt host starts warm in "
            "minutes instead of re-learning what users install; content-addressed files deduplicate well, so "
            "daily copies cost little",
        restore="on a rebuilt host after `invoke provision`: `invoke backup.restore --host H --item pnpm-store "
                "--at latest` (or `invoke cache.warm` from the registry, slower)",
    ),
    Item(
        name="cutover-state",
        title="cutover phase and routing policy (issue 11)",
        decision="pending",
        lives="every host's Docker engine (labelled objects with a generation number), once issue 11 lands",
        why="small and decisive: which users go to Hetzner and which phase the fleet is in. Every host holds a "
            "copy, so losing one host loses nothing; the backup covers losing all of them, or a bad write. "
            "PENDING: to be exported through drape_fleet.cutover's own export call once it lands (the lead "
            "wires it: an `export` consistency with its argv, runs_on host)",
    ),
    Item(
        name="workspaces",
        title="per-workspace project directories kept between sessions (issue 9)",
        decision="not backed up",
        lives="every host: Docker volumes drape-ws-<workspace> on the data root under /srv/drape, LRU-bounded",
        why="derived: a clone of the user's git repository plus dependencies and framework caches; the preview "
            "updates it with `git fetch` + `checkout --force`, so nothing in it is the user's only copy. Losing "
            "it turns the next start from 'kept' into 'warm' (an install from the store)",
    ),
    Item(
        name="previews",
        title="running preview containers, activity stamps, tombstones, cordon markers",
        decision="not backed up",
        lives="every host's Docker engine (containers, labels, the drape-cordon volume)",
        why="runtime state: previews on a lost host are placed again by failover; a rebuilt host starts "
            "uncordoned (cordon it again if it should be)",
    ),
    Item(
        name="host-config",
        title="host configuration: packages, sshd, firewall, Docker, timers, users",
        decision="not backed up",
        lives="every host: /etc and friends",
        why="reproducible: `invoke provision` rebuilds it from git (deploys/, files/, the fleet file); the "
            "hosts' pinned SSH keys are in git (config/<env>.known_hosts) and a reinstalled host is pinned anew "
            "through Robot's rescue system",
    ),
    Item(
        name="host-tls",
        title="each host's Docker API server certificate and key",
        decision="not backed up",
        lives="every host: the Docker daemon's TLS directory",
        why="reissued from the CA (backed up as `pki`) by `invoke provision`",
    ),
    Item(
        name="prometheus-tsdb",
        title="monitoring data: Prometheus TSDB, Alertmanager silences (issue 13)",
        decision="not backed up",
        lives="the monitoring server: /var/lib/prometheus",
        why="history, not state: alert rules, targets and routes come from git; alerts look at minutes, not "
            "months; losing the host loses the graphs' past and any silences (re-create them), and the dead "
            "man's switch pages while it is down",
    ),
    Item(
        name="images",
        title="preview template images and Docker's layers",
        decision="not backed up",
        lives="every host: /var/lib/docker",
        why="rebuilt from images/ in git by `invoke fleet.images`",
    ),
    Item(
        name="ops-secrets",
        title="API tokens and the backup passphrase",
        decision="not backed up",
        lives="the ops machine: ~/.config/drape-fleet/secrets.toml or the environment",
        why="escrowed, not backed up: the backup passphrase and the target's SSH key are kept by ops in the "
            "password manager (docs/backups.md, 'Key escrow'); API tokens are re-issued from the providers' "
            "consoles",
    ),
)


def item(name: str) -> Item:
    """The catalogue entry ``name``; the error lists the backed-up ones."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    names = ", ".join(i.name for i in CATALOGUE if i.backed_up)
    raise KeyError(f"no backup item {name!r}: the items backed up are {names}")


def backed_up(runs_on: RunsOn | None = None) -> tuple[Item, ...]:
    return tuple(i for i in CATALOGUE if i.backed_up and (runs_on is None or i.runs_on == runs_on))
