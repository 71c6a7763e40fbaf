"""What a cutover task works with: the fleet and its ``[cutover]`` settings, the state store and the start
metrics on the engines, and - made when first needed - the runtime, the Fly client and Cloud DNS.

``Session`` is the cutover's state as this task read it, and the only way it is changed: every change is a new
generation written with the generation it was planned from, so two tasks never overwrite each other.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from drape_fleet.config.cutover import CutoverSettings
from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.models import FleetConfig
from drape_fleet.config.secrets import Secrets
from drape_fleet.console import Log
from drape_fleet.cutover.progress import Progress
from drape_fleet.routing.metrics import MetricsStore, StartMetrics
from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.records import StateRecord
from drape_fleet.routing.store import StateStore, StoreError, StoreView, no_quorum
from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.fleet import Fleet

if TYPE_CHECKING:
    from drape_fleet.environments import FleetTarget
    from drape_fleet.fly import FlyClient
    from drape_fleet.hetzner.cloud_dns import CloudDns
    from drape_fleet.runtime.service import PreviewRuntime


class CutoverRefused(RuntimeError):
    """The task will not run (out of order, a gate failing, bad input); nothing was changed."""


def who() -> str:
    """Who writes a state change: ``user@machine`` (shown by ``cutover status`` and kept in the events)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def settings_of(fleet: FleetConfig, source: str) -> CutoverSettings:
    """The fleet's ``[cutover]`` section, checked against the rest of the fleet file (before any host)."""
    settings = fleet.cutover or CutoverSettings()
    problems: list[Problem] = []
    frameworks = set(fleet.runtime.frameworks)
    for field_name, name in [("cutover.smoke.framework", settings.smoke.framework),
                             ("cutover.load_test.framework", settings.load_test.framework),
                             *[("cutover.required_frameworks", n) for n in settings.required_frameworks or ()]]:
        if name not in frameworks:
            problems.append(Problem(field_name, f"{name!r} is not a framework of [runtime.frameworks]",
                                    f"use one of {', '.join(sorted(frameworks))}"))
    link = settings.link
    if link is not None:
        unknown = sorted(set(link.host_addresses) - set(fleet.host_names))
        if unknown:
            problems.append(Problem("cutover.link.host_addresses", f"{', '.join(unknown)} are not hosts of the fleet",
                                    f"name hosts of the fleet: {', '.join(fleet.host_names)}"))
        previews = [h.name for h in fleet.hosts if "preview" in h.roles and h.name not in link.host_addresses]
        if previews:
            problems.append(Problem("cutover.link.host_addresses", f"preview host(s) {', '.join(previews)} have no "
                                    "tunnel address", "give every preview host one"))
        if not any(link.backend_address.ip in network for network in fleet.network.backend_addresses):
            problems.append(Problem("cutover.link.backend_address", f"{link.backend_address.ip} is not in "
                                    "network.backend_addresses, so the hosts' firewall keeps it out of previews",
                                    f"add \"{link.backend_address.ip}/32\" to network.backend_addresses and run "
                                    "`invoke provision --all --only firewall`"))
    if problems:
        raise ConfigError(source, problems)
    return settings


def known_users(fleet_file: Path, settings: CutoverSettings) -> frozenset[str] | None:
    """The users ``--allow`` may name: the users file (None when none is configured) and the internal users."""
    if settings.users_file is None:
        return None
    path = (fleet_file.parent / settings.users_file).resolve()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(str(fleet_file), [Problem("cutover.users_file", f"cannot read {path} ({exc.strerror})",
                                                    "export the backend's user ids there, one a line")]) from None
    users = {line.split("#", 1)[0].strip() for line in lines}
    return frozenset(u for u in users if u) | frozenset(settings.internal_users)


@dataclass
class CutoverContext:
    target: FleetTarget
    secrets: Secrets
    say: Log
    clock: Clock = SYSTEM_CLOCK
    writer: str = field(default_factory=who)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def fleet(self) -> FleetConfig:
        return self.target.fleet

    @property
    def fleet_file(self) -> Path:
        return self.target.env.fleet_file

    @property
    def pki_dir(self) -> Path:
        return self.target.env.pki_dir

    @cached_property
    def settings(self) -> CutoverSettings:
        return settings_of(self.fleet, str(self.fleet_file))

    @cached_property
    def engines(self) -> Fleet:
        tls = TlsFiles.from_pki_dir(self.pki_dir)
        fleet = Fleet.from_endpoints(tls_endpoints(self.fleet, tls), self.fleet.runtime)
        self._closers.append(fleet.close)
        return fleet

    @cached_property
    def store(self) -> StateStore:
        return StateStore(self.engines, self.fleet.runtime.owner, clock=self.clock)

    @cached_property
    def metrics_store(self) -> MetricsStore:
        return MetricsStore(self.engines, self.fleet.runtime.owner, clock=self.clock)

    @cached_property
    def runtime(self) -> PreviewRuntime:
        from drape_fleet.runtime.service import PreviewRuntime

        runtime = PreviewRuntime.connect(self.fleet, pki_dir=self.pki_dir, background=False, reaper=False)
        self._closers.insert(0, runtime.close)
        return runtime

    @cached_property
    def fly(self) -> FlyClient:
        from drape_fleet.fly import FlyClient

        client = FlyClient.for_fleet(self.fleet, self.secrets)
        self._closers.append(client.close)
        return client

    @cached_property
    def dns(self) -> CloudDns:
        from drape_fleet.hetzner.cloud_dns import CloudDns

        return CloudDns.for_fleet(self.fleet, self.secrets)

    def metrics(self) -> StartMetrics:
        merged, missing = self.metrics_store.read()
        if missing:
            self.say(f"start metrics: {', '.join(missing)} did not answer (the other hosts hold every snapshot)")
        return merged

    @property
    def preview_hosts(self) -> list[str]:
        return [h.name for h in self.fleet.hosts if "preview" in h.roles]

    def close(self) -> None:
        for close in self._closers:
            close()
        self._closers.clear()


@dataclass
class Session:
    """The state as read at the start of a task, and every change this task makes to it."""

    ctx: CutoverContext
    view: StoreView
    record: StateRecord | None
    progress: Progress
    policy: RoutingPolicy

    @classmethod
    def open(cls, ctx: CutoverContext, *, need_quorum: bool) -> Session:
        view = ctx.store.read()
        if need_quorum and not view.quorum:
            raise StoreError(no_quorum(view, "change it"))
        if view.behind and view.quorum:
            repaired = ctx.store.repair(view)
            if repaired:
                ctx.say(f"cutover state: brought {', '.join(repaired)} up to generation {view.generation}")
        record = view.newest
        progress = Progress.parse(record.progress) if record else Progress()
        policy = record.policy if record else RoutingPolicy()
        return cls(ctx, view, record, progress, policy)

    @property
    def generation(self) -> int:
        return self.record.generation if self.record else 0

    def commit(self, *, progress: Progress | None = None, policy: RoutingPolicy | None = None,
               event: str | None = None) -> None:
        """Write a new generation with these changes (the others kept)."""
        new_progress = progress or self.progress
        if event:
            new_progress = new_progress.log(event, by=self.ctx.writer, at=self.ctx.clock.now())
        new_policy = policy or self.policy
        self.record = self.ctx.store.write(new_policy, new_progress.to_json(), expected=self.generation,
                                           writer=self.ctx.writer)
        self.progress, self.policy = new_progress, new_policy
