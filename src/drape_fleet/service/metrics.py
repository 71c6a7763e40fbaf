"""The service's metrics in Prometheus' format (``GET /metrics``, scope ``metrics``), for monitoring (issue 13)
and the cutover's report (issue 11). Names and labels are a contract: dashboards and alert rules use them.

=================================================  =====================================================
metric                                             labels / meaning
=================================================  =====================================================
``drape_runtime_requests_total``                   caller, method, route, status
``drape_runtime_request_seconds``                  caller, route: time in the service, histogram
``drape_preview_starts_total``                     kind: cold, warm, prewarmed, hot (API starts answered)
``drape_preview_start_seconds``                    kind: from the start call to ready (what the user waits)
``drape_preview_phase_seconds``                    phase, kind: time spent in each phase on the way to ready
``drape_preview_placements_total``                 host: previews placed (container started) there
``drape_preview_replacements_total``               host: previews placed again because that host died first
``drape_preview_failures_total``                   reason: queue_timeout, placement, start, install, compile,
                                                   lost (its host died; not placed again here),
                                                   queue_full (refused at the door)
``drape_preview_queue_length``                     placements waiting for capacity now
``drape_preview_queue_wait_seconds``               how long each waited, histogram
``drape_preview_reaped_total``                     outcome: removed, error
``drape_host_*``                                   host: memory/cpus capacity, used, free; previews; reachable,
                                                   cordoned (read from the engines at scrape time)
``drape_routing_starts_total``                     phase, provider, kind, outcome: starts reported to the routing
                                                   API (a failed placement is a failed Hetzner start)
``drape_routing_start_seconds``                    provider, kind: reported successful starts, request to ready
``drape_routing_fallbacks_total``                  phase: failed Hetzner placements sent to Fly
``drape_routing_phase``, ``..._generation``        the routing policy in force (read at scrape time)
=================================================  =====================================================

The kind of a start: ``hot`` when the call answers ready (the preview ran already), ``prewarmed`` when a
pre-warm made the preview (ready or on its way) before the start, ``warm`` when this instance has seen the
project ready before (its template's caches and the store are likely warm), ``cold`` otherwise. Warm and cold
are this instance's view: with several instances, a project warm on the fleet may count as cold on one that
never served it.

Hot path cost: each request is one counter and one histogram observation; runtime events are a dictionary
lookup and an observation. The per-host figures are read from the engines only when scraped. With several
worker processes per instance (``service.workers``), each writes its values to files that a scrape sums
(prometheus-client's multiprocess mode); kinds are each process's view, like each instance's.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from drape_fleet.runtime.events import RuntimeEvents
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import HostStatus, PreviewStatus, ReapReport

START_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
KINDS = ("cold", "warm", "prewarmed", "hot")
FAILED_IN = {Phase.QUEUED: "queue_timeout", Phase.PLACING: "placement", Phase.STARTING: "start",
             Phase.INSTALLING: "install", Phase.COMPILING: "compile"}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_REMEMBERED = 20_000
"""Workspaces and projects remembered for kinds (oldest forgotten first): bounded memory whatever the traffic."""


V = TypeVar("V")


@dataclass
class _Pending:
    kind: str
    since: float


class _Bounded(OrderedDict[str, V]):
    def remember(self, key: str, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > MAX_REMEMBERED:
            self.popitem(last=False)


class ServiceMetrics(RuntimeEvents):
    """Request metrics (fed by ``guard``), start kinds (fed by the routes) and the runtime's events."""

    def __init__(self, instance: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance = instance
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("drape_runtime_requests", "Requests answered, by caller, route and status.",
                                ["caller", "method", "route", "status"], registry=r)
        self.request_seconds = Histogram("drape_runtime_request_seconds", "Time a request spent in the service.",
                                         ["caller", "route"], buckets=REQUEST_BUCKETS, registry=r)
        self.starts = Counter("drape_preview_starts", "Starts answered, by kind.", ["kind"], registry=r)
        self.start_seconds = Histogram("drape_preview_start_seconds", "From the start call until ready, by kind.",
                                       ["kind"], buckets=START_BUCKETS, registry=r)
        self.phase_seconds = Histogram("drape_preview_phase_seconds", "Time in each phase on the way to ready.",
                                       ["phase", "kind"], buckets=START_BUCKETS, registry=r)
        self.placements = Counter("drape_preview_placements", "Previews placed on a host.", ["host"], registry=r)
        self.replacements = Counter("drape_preview_replacements",
                                    "Previews placed again because their host died before ready.", ["host"],
                                    registry=r)
        self.failures = Counter("drape_preview_failures", "Previews that failed, by reason.", ["reason"],
                                registry=r)
        self.queue_length_gauge = Gauge("drape_preview_queue_length", "Placements waiting for capacity.",
                                        multiprocess_mode="livesum", registry=r)
        self.queue_wait = Histogram("drape_preview_queue_wait_seconds", "Time a placement waited for capacity.",
                                    buckets=START_BUCKETS, registry=r)
        self.reaped_total = Counter("drape_preview_reaped", "Previews and claims the reaper removed.", ["outcome"],
                                    registry=r)
        self.routing_starts = Counter("drape_routing_starts", "Starts reported to the routing API (issue 11), by the "
                                      "phase in force, provider, kind and outcome.",
                                      ["phase", "provider", "kind", "outcome"], registry=r)
        self.routing_start_seconds = Histogram("drape_routing_start_seconds", "Successful starts reported to the "
                                               "routing API, request to ready.", ["provider", "kind"],
                                               buckets=START_BUCKETS, registry=r)
        self.routing_fallbacks = Counter("drape_routing_fallbacks", "Failed Hetzner placements sent to Fly.",
                                         ["phase"], registry=r)
        self._hosts: _HostCollector | None = None
        self._extra: list[Collector] = []
        self._lock = threading.Lock()
        self._pending: _Bounded[_Pending] = _Bounded()
        """Starts on their way to ready: their kind and when the call came."""
        self._kinds: _Bounded[str] = _Bounded()
        """The kind of each workspace's latest placement, decided when it began (``requested``)."""
        self._prewarmed: _Bounded[bool] = _Bounded()
        """Workspaces a pre-warm placed and no start has used yet."""
        self._projects: _Bounded[str] = _Bounded()
        self._seen_ready: _Bounded[bool] = _Bounded()
        """Projects this instance has seen ready (what makes a later placement "warm")."""

    def watch_hosts(self, hosts: Callable[[], list[HostStatus]]) -> None:
        """Read the hosts' capacity at scrape time (``PreviewRuntime.hosts``)."""
        self._hosts = _HostCollector(hosts)
        if multiprocess_dir() is None:
            self.registry.register(self._hosts)

    def watch_routing(self, policy: Callable[[], tuple[int, int]]) -> None:
        """Read the routing policy in force (phase, generation) at scrape time (``Router.policy``/``generation``)."""
        collector = _PolicyCollector(policy)
        self._extra.append(collector)
        if multiprocess_dir() is None:
            self.registry.register(collector)

    def routing_start(self, phase: int, provider: str, kind: str, seconds: float | None, *, ok: bool) -> None:
        """A start the routing API recorded (``record_start``, or a failed placement: ``seconds`` None)."""
        self.routing_starts.labels(str(phase), provider, kind, "ok" if ok else "failed").inc()
        if ok and seconds is not None:
            self.routing_start_seconds.labels(provider, kind).observe(seconds)

    def routing_fallback(self, phase: int) -> None:
        self.routing_fallbacks.labels(str(phase)).inc()

    def scrape(self) -> bytes:
        """The text Prometheus reads: this process's metrics, or, with several worker processes
        (``$PROMETHEUS_MULTIPROC_DIR``), every worker's, summed by prometheus-client's multiprocess collector."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        _forget_dead_workers(directory)
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        for collector in (self._hosts, *self._extra):
            if collector is not None:
                registry.register(collector)
        return generate_latest(registry)

    # -- requests (guard) --------------------------------------------------------------------------

    def request_done(self, caller: str, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(caller, method, route, str(status)).inc()
        self.request_seconds.labels(caller, route).observe(seconds)

    # -- starts (routes) ---------------------------------------------------------------------------

    def start_answered(self, status: PreviewStatus, *, called_at: float) -> str:
        """A start call answered ``status``: count it by kind, and time it to ready. Returns the kind."""
        workspace = status.workspace
        with self._lock:
            if status.ready:
                kind = "prewarmed" if self._prewarmed.pop(workspace, None) else "hot"
                self.start_seconds.labels(kind).observe(self._clock() - called_at)
            else:
                kind = self._kinds.get(workspace) or self._kind_of(status.project, prewarm=False)
                if workspace not in self._pending:  # a second start while the first is on its way keeps its time
                    self._pending.remember(workspace, _Pending(kind, called_at))
        self.starts.labels(kind).inc()
        return kind

    def queue_full(self) -> None:
        self.failures.labels("queue_full").inc()

    def _kind_of(self, project: str, *, prewarm: bool) -> str:
        return "prewarmed" if prewarm else "warm" if project in self._seen_ready else "cold"

    # -- runtime events ----------------------------------------------------------------------------

    def requested(self, workspace: str, *, project: str, framework: str, prewarm: bool) -> None:
        with self._lock:
            self._projects.remember(workspace, project)
            self._kinds.remember(workspace, self._kind_of(project, prewarm=prewarm))
            if prewarm:
                self._prewarmed.remember(workspace, True)
            else:
                self._prewarmed.pop(workspace, None)

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        with self._lock:
            kind = self._kinds.get(workspace) or "cold"
            self.phase_seconds.labels(old.value, kind).observe(seconds)
            if old is Phase.QUEUED:
                self.queue_wait.observe(seconds)
            if old is Phase.PLACING and new is Phase.STARTING and host:
                self.placements.labels(host).inc()
            elif new is Phase.PLACING and old in (Phase.STARTING, Phase.INSTALLING, Phase.COMPILING) and host:
                self.replacements.labels(host).inc()
            if new is Phase.READY:
                self._seen_ready.remember(self._projects.get(workspace, workspace), True)
                pending = self._pending.pop(workspace, None)
                if pending is not None:
                    self.start_seconds.labels(pending.kind).observe(self._clock() - pending.since)
                    self._prewarmed.pop(workspace, None)
            elif new in (Phase.FAILED, Phase.LOST):
                self.failures.labels("lost" if new is Phase.LOST else FAILED_IN.get(old, old.value)).inc()
                self._pending.pop(workspace, None)
                self._prewarmed.pop(workspace, None)

    def queue_length(self, length: int) -> None:
        self.queue_length_gauge.set(length)

    def reaped(self, report: ReapReport) -> None:
        if report.removed:
            self.reaped_total.labels("removed").inc(len(report.removed))
        if report.errors:
            self.reaped_total.labels("error").inc(len(report.errors))


def multiprocess_dir() -> str | None:
    """Where worker processes keep their metrics (set by ``cli.serve`` before they start), or None."""
    return os.environ.get(MULTIPROC_ENV) or None


def _forget_dead_workers(directory: str) -> None:
    """A worker that died (and was replaced) must not count in the live gauges any more."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


class _HostCollector(Collector):
    def __init__(self, hosts: Callable[[], list[HostStatus]]) -> None:
        self._hosts = hosts

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: registering must not call the engines

    def collect(self) -> Iterator[Metric]:
        figures = {
            "drape_host_memory_capacity_bytes": ("Memory previews may use.", lambda h: h.memory_capacity),
            "drape_host_memory_used_bytes": ("Memory reserved by previews and claims.", lambda h: h.memory_used),
            "drape_host_memory_free_bytes": ("Memory still free for previews.", lambda h: h.memory_free),
            "drape_host_cpus_capacity": ("Nominal cores previews may reserve (with overcommit).",
                                         lambda h: h.cpu_capacity),
            "drape_host_cpus_used": ("Nominal cores reserved by previews.", lambda h: h.cpus_used),
            "drape_host_cpus_free": ("Nominal cores still free.", lambda h: max(0.0, h.cpu_capacity - h.cpus_used)),
            "drape_host_previews": ("Previews on the host.", lambda h: h.previews),
            "drape_host_reachable": ("1 when the host's engine answered.", lambda h: int(h.reachable)),
            "drape_host_cordoned": ("1 when no new previews go to the host.", lambda h: int(h.cordoned)),
        }
        families = {name: GaugeMetricFamily(name, text, labels=["host"]) for name, (text, _) in figures.items()}
        for host in self._hosts():
            for name, (_, value) in figures.items():
                families[name].add_metric([host.name], float(value(host)))  # type: ignore[no-untyped-call]
        yield from families.values()


class _PolicyCollector(Collector):
    def __init__(self, policy: Callable[[], tuple[int, int]]) -> None:
        self._policy = policy

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        phase, generation = self._policy()
        yield GaugeMetricFamily("drape_routing_phase", "The cutover phase of the routing policy in force.",
                                value=phase)
        yield GaugeMetricFamily("drape_routing_generation", "The routing policy's generation in force.",
                                value=generation)
