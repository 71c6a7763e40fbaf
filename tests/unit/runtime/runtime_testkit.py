"""A small fleet of fake engines (``fake_docker``) on loopback addresses, a clock the test moves, and runtimes
over them: one ``PreviewRuntime`` is one backend process; two over the same hosts are two processes.

Time only moves when the test says so (``clock.advance``): the runtime's deadlines, backoffs, grace periods
and timestamps all read this clock. Real time passes only in the runtime's own short waits (its polls), so
``eventually`` polls for an outcome with a hard limit instead of sleeping a fixed time.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fake_docker import FakeHost, api_error

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.runtime import PreviewResources, RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Endpoint, Engine
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.spec import container_spec, make_request, network_spec

T = TypeVar("T")

TINY = "drape-lab/preview-tiny:1"
MIB = 1024 * 1024


class FakeClock(Clock):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
        self._seconds = 1000.0

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += timedelta(seconds=seconds)
            self._seconds += seconds


def loopback_fleet(**runtime: Any) -> FleetConfig:
    """Three hosts of 1 GiB on 127.0.0.11-13 (four 256 MiB previews fill one), frameworks ``tiny`` and ``other``."""
    settings = {
        "frameworks": {"tiny": {"image": TINY, "port": 3000, "ready_timeout_s": 600},
                       "other": {"image": "drape-lab/preview-other:1", "port": 3000, "ready_timeout_s": 600}},
        "preview": {"cpus": 0.5, "memory_mib": 256, "pids_limit": 256, "disk_gib": 1, "tmp_mib": 16},
        "max_preview": {"cpus": 2, "memory_mib": 1024, "pids_limit": 256, "disk_gib": 1, "tmp_mib": 16},
        "disk_limit": "where-supported",  # the fake engines run on "extfs", like the lab's
        **runtime,
    }
    return validate_fleet({
        "environment": {"name": "lab"},
        "network": {"admin_allowlist": ["10.0.9.1/32"], "backend_addresses": ["127.0.0.1/32"]},
        "hosts": [{"name": f"ax{i}", "public_address": f"192.0.2.{10 + i}", "private_address": f"127.0.0.{10 + i}",
                   "capacity": {"cpus": 2, "memory_gib": 1, "disk_gib": 20}} for i in (1, 2, 3)],
        "runtime": settings,
    }, source="(test)")


class World:
    """The fake fleet: its hosts, its clock, and the runtimes made over it (closed by ``close``)."""

    def __init__(self, **runtime: Any) -> None:
        self.clock = FakeClock()
        self.config = loopback_fleet(**runtime)
        self.hosts = {h.name: FakeHost(h.name, str(h.private_address), self.clock) for h in self.config.hosts}
        self.names: dict[str, list[str]] = {"github.com": ["140.82.121.4"]}
        self._runtimes: list[PreviewRuntime] = []

    def runtime(self, *, background: bool = False, project_source: Any = None, **overrides: Any) -> PreviewRuntime:
        """A backend process: its own memory, the same engines; ``overrides`` change its runtime settings. Its
        watches are listed before it is handed out (as a process's first placement waits for them)."""
        seed = len(self._runtimes)
        settings = RuntimeSettings.model_validate({**self.config.runtime.model_dump(), **overrides})
        config = self.config.model_copy(update={"runtime": settings})
        engines = [Engine(Endpoint(name, f"unix:///fake/{name}.sock"), settings, clock=self.clock,
                          rng=random.Random(seed), connect=lambda _e, t, _p, h=host: h.client(t))
                   for name, host in self.hosts.items()]
        runtime = PreviewRuntime(config, Fleet(engines), background=background, rng=random.Random(seed),
                                 clock=self.clock, project_source=project_source, resolve=self.resolve)
        self._runtimes.append(runtime)
        for name in self.hosts:
            if not (self.hosts[name].down or self.hosts[name].black_hole):
                runtime.observer.watch(name).synced.wait(5)
        return runtime

    def resolve(self, host: str) -> list[str]:
        """Name resolution for repositories (no DNS in unit tests): ``names`` maps a name to its addresses."""
        if host not in self.names:
            raise OSError(f"{host}: Name or service not known")
        return self.names[host]

    @contextlib.contextmanager
    def ticking(self, seconds: float = 1.0, every: float = 0.005) -> Iterator[None]:
        """Move the clock ``seconds`` forward every ``every`` real seconds while the block runs: for calls that
        wait on a deadline inside the runtime (a queue timeout, a move that cannot be placed)."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(every):
                self.clock.advance(seconds)

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()

    def close(self) -> None:
        for runtime in self._runtimes:
            runtime.close()
        for host in self.hosts.values():
            host.close_servers()

    # -- what another process, a crash or an operator leaves on a host ----------------------------

    def claim_only(self, host: str, workspace: str, *, claim: str = "0123456789ab") -> str:
        """A claim whose process died before starting it: network and ``created`` container, as ``lifecycle``
        makes them (from the same pure builders)."""
        from ipaddress import IPv4Network

        fake = self.hosts[host]
        settings = self.config.runtime
        request = make_request(settings, self.config.hosts, workspace=workspace, user="u1", framework="tiny")
        network = network_spec(settings, claim=claim, subnet=IPv4Network(f"10.240.{len(fake.by_id)}.0/28"),
                               publish_address=fake.address)
        fake.create_network(**network.create_kwargs())
        spec = container_spec(request, settings, claim=claim, created=self.clock.now(), network=network.name,
                              publish_address=fake.address, disk_limit=False)
        return fake.create_container_from_config(spec.body, spec.name)["Id"]

    def owned(self, host: str) -> list[str]:
        """Names of the previews (and their tombstones) on ``host``, sorted: what our owner label marks, but the
        network holders placement keeps ready."""
        return sorted(c.name for c in self.hosts[host].by_id.values()
                      if c.labels.get(L.OWNER) and c.labels.get(L.KIND) != L.KIND_HOLDER)

    def networks(self, host: str) -> tuple[int, int]:
        """(networks of ours a preview uses, networks of ours no preview uses) on ``host``: what a removal leaves
        behind is told apart from the spares placement keeps ready (at most ``spare_networks`` network holders)."""
        fake = self.hosts[host]
        used = set()
        for container in fake.by_id.values():
            if container.labels.get(L.KIND) == L.KIND_PREVIEW:
                mode = container.network
                used.add(fake.container(mode[10:]).network if mode.startswith("container:") else mode)
        ours = [n for n, net in fake.network_table.items() if net["Labels"].get(L.OWNER)]
        return sum(1 for n in ours if n in used), sum(1 for n in ours if n not in used)

    def preview(self, workspace: str) -> Any:
        """The workspace's preview container (on whichever host)."""
        return next(c for h in self.hosts.values() for c in h.by_id.values() if c.name == f"drape-pv-{workspace}")

    def everywhere(self) -> dict[str, list[str]]:
        return {name: self.owned(name) for name in self.hosts}


def down(runtime: PreviewRuntime, host: str) -> None:
    """Wait until ``runtime`` has found ``host`` down (its health checks failed), asking it to look."""
    from drape_fleet.runtime.engines import HostState

    runtime.fleet.request_check(runtime.fleet[host])
    eventually(lambda: runtime.fleet[host].state is HostState.DOWN)


def back(world: World, runtime: PreviewRuntime, host: str) -> None:
    """``host`` answers again: its next health check (past the backoff) finds it up, and its watch lists it again."""
    from drape_fleet.runtime.engines import HostState

    world.hosts[host].down = False
    world.hosts[host].set_black_hole(False)
    world.clock.advance(60)
    runtime.fleet.check_due()
    eventually(lambda: runtime.fleet[host].state is HostState.UP)
    eventually(lambda: runtime.observer.watch(host).view() is not None)


HALF = PreviewResources(cpus=0.5, memory_mib=512, pids_limit=256, disk_gib=1, tmp_mib=16)
"""Half a host: six fill the fleet."""


def fill(runtime: PreviewRuntime) -> list[str]:
    """Six half-host previews, ready: every host is full."""
    workspaces = [f"full-{i}" for i in range(6)]
    for workspace in workspaces:
        assert runtime.start(workspace, "u1", "tiny", resources=HALF, wait=5).phase is Phase.READY
    return workspaces


def queued(runtime: PreviewRuntime, workspace: str, position: int) -> bool:
    status = runtime.status(workspace)
    return status is not None and status.phase is Phase.QUEUED and status.queue_position == position


def eventually(check: Callable[[], T], *, within: float = 5.0, tick: Callable[[], object] | None = None) -> T:
    """Poll ``check`` until it returns something truthy (returned) or ``within`` real seconds pass (fail).
    ``tick`` runs between polls (e.g. to move the clock)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {check.__doc__ or check}")
        if tick is not None:
            tick()
        time.sleep(0.01)


__all__ = ["HALF", "MIB", "TINY", "FakeClock", "World", "api_error", "back", "down", "eventually", "fill",
           "loopback_fleet", "queued"]
