"""``PreviewRuntime``: the thread-safe, synchronous facade the backend calls.

    runtime = PreviewRuntime.connect(load_fleet("config/production.toml"))
    status = runtime.start(workspace="ws-42", user="u-7", framework="nextjs")   # start or get
    runtime.project_opened(workspace="ws-42", user="u-7", framework="nextjs")   # pre-warm
    runtime.activity("ws-42")                                                   # the user is still here
    runtime.stop("ws-42")
    runtime.previews(); runtime.hosts()                                         # what runs where

Nothing is kept that the engines do not also know: a new ``PreviewRuntime`` over the same fleet sees every
preview (labels), its activity (stamp in the container) and every cordon (marker volume). What is kept in
memory is a per-workspace *tracker* (phase, host, published port) that saves round trips and lets callers wait.

Background threads (daemon): health probes of hosts in backoff, the activity flush, the reaper, and one
placement/readiness worker per preview on its way to ready.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import PreviewResources, RuntimeSettings
from drape_fleet.runtime import activity, lifecycle, maintenance, reaper
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.engines import Endpoint, Engine, Fleet, TlsFiles, tls_endpoints
from drape_fleet.runtime.errors import (
    EngineError,
    HostUnavailable,
    QueueFull,
    RuntimeFailure,
    WorkspaceConflict,
)
from drape_fleet.runtime.lifecycle import Outcome, Reaped
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.readiness import Phase, http_answers, read_phase
from drape_fleet.runtime.spec import PreviewRequest, make_request
from drape_fleet.runtime.state import HostView, PreviewRecord
from drape_fleet.runtime.status import HostStatus, PreviewStatus, ReapReport
from drape_fleet.runtime.views import Observer

MIB = 1024 * 1024
FAILED_KEPT_S = 60.0
"""A failed preview's container is kept this long so its logs can be read, then the reaper removes it."""
HOST_DEAD_S = 6.0
"""A starting preview whose host has not answered for this long is placed again elsewhere."""
QUEUE_POLL_S = 1.0
HEALTH_PING_S = 5.0
"""Healthy hosts are pinged this often by the background health thread."""
"""The queue's head retries this often even without a local wake-up: other processes free capacity too."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Tracker:
    request: PreviewRequest
    phase: Phase
    since: datetime
    requested_at: float
    host: str | None = None
    container_id: str | None = None
    public_port: int | None = None
    error: str | None = None
    created: datetime | None = None
    queued_at: float | None = None
    generation: int = 0
    prewarm: bool = False
    seq: int = 0
    """Request order: the wait queue is first come, first served by this, whatever thread gets there first."""


class PreviewRuntime:
    """Place, keep and fail over previews across the fleet. Every public method is thread-safe."""

    def __init__(self, config: FleetConfig, fleet: Fleet, *, background: bool = True,
                 reaper: bool = True, rng: random.Random | None = None) -> None:
        self.config = config
        self.settings: RuntimeSettings = config.runtime
        check_address_plan(config)
        self.fleet = fleet
        self.observer = Observer(config, fleet, self.settings)
        self._rng = rng or random.Random()  # noqa: S311 - jitter and subnet choice, not security
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._trackers: dict[str, _Tracker] = {}
        self._workspace_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._host_locks = {name: threading.Lock() for name in fleet.names}
        self._pending: dict[str, tuple[int, float]] = {}
        self._queue: list[_Tracker] = []
        self._sequence = itertools.count(1)
        self._activity = ActivityBuffer()
        self._tombstones_seen: dict[str, float] = {}
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        if background:
            self._spawn(self._health_loop, "drape-health")
            self._spawn(self._flush_loop, "drape-activity")
            if reaper:
                self._spawn(self._reaper_loop, "drape-reaper")

    # ----------------------------------------------------------------------------------------------
    # Construction
    # ----------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, config: FleetConfig, *, tls: TlsFiles | None = None, pki_dir: Path | None = None,
                **kwargs: Any) -> PreviewRuntime:
        """The production way in: every host's engine over mutual TLS (files from the fleet's PKI directory)."""
        if tls is None:
            tls = TlsFiles.from_pki_dir(pki_dir if pki_dir is not None else default_pki_dir(config))
        return cls.from_endpoints(config, tls_endpoints(config, tls), **kwargs)

    @classmethod
    def from_endpoints(cls, config: FleetConfig, endpoints: list[Endpoint], **kwargs: Any) -> PreviewRuntime:
        names = {e.host for e in endpoints}
        if names != set(config.host_names):
            raise ValueError(f"endpoints for {sorted(names)} do not match the fleet's hosts {list(config.host_names)}")
        return cls(config, Fleet.from_endpoints(endpoints, config.runtime), **kwargs)

    def close(self) -> None:
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
        with contextlib.suppress(Exception):
            self.flush_activity()
        for thread in self._threads:
            thread.join(timeout=2)
        self.fleet.close()

    def __enter__(self) -> PreviewRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------
    # The backend's calls
    # ----------------------------------------------------------------------------------------------

    def start(self, workspace: str, user: str, framework: str, *, project: str | None = None,
              resources: PreviewResources | None = None, repo: str | None = None, ref: str | None = None,
              env: Mapping[str, str] | None = None, wait: float | None = None) -> PreviewStatus:
        """Start the workspace's preview, or get the one it has. Returns at once (hot start: ``ready``; else
        the phase it is in) unless ``wait`` is given, then waits up to that many seconds for ready or failed.

        Raises ``BadRequest`` (unknown framework, unsafe ids, too large), ``WorkspaceConflict`` (the workspace's
        preview belongs to another user or runs another framework) or ``QueueFull``."""
        request = make_request(self.settings, self.config.hosts, workspace=workspace, user=user,
                               framework=framework, project=project, resources=resources, repo=repo, ref=ref, env=env)
        status = self._start(request, prewarm=False)
        if wait is not None and not status.phase.final:
            return self.wait_ready(workspace, wait)
        return status

    def project_opened(self, workspace: str, user: str, framework: str, *, project: str | None = None,
                       resources: PreviewResources | None = None, repo: str | None = None,
                       ref: str | None = None, env: Mapping[str, str] | None = None) -> PreviewStatus:
        """Pre-warm: start preparing the preview in the background when the user opens the project. A pre-warm
        never waits in the queue: when the fleet is full it gives up (phase ``failed``) and a later ``start``
        queues as usual."""
        request = make_request(self.settings, self.config.hosts, workspace=workspace, user=user,
                               framework=framework, project=project, resources=resources, repo=repo, ref=ref, env=env)
        return self._start(request, prewarm=True)

    def activity(self, workspace: str) -> None:
        """The user is still here. O(1), no I/O: written to the hosts by the background flush."""
        self._activity.note(workspace)

    def stop(self, workspace: str) -> bool:
        """Stop and remove the workspace's preview (on every reachable host). True if there was one."""
        with self._workspace_locks[workspace]:
            with self._lock:
                tracker = self._trackers.pop(workspace, None)
                if tracker is not None:
                    tracker.generation += 1
                    self._leave_queue(tracker)
                self._changed.notify_all()
            self._activity.forget(workspace)
            found, _ = self.observer.find(workspace)
            removed = False
            for record in found:
                result = lifecycle.reap_one(self.fleet[record.host], record, now=_now(),
                                            persist_s=self.settings.persist_s, force=True)
                removed = removed or result is Reaped.REMOVED
        self._wake_queue()
        return removed

    def status(self, workspace: str) -> PreviewStatus | None:
        """The workspace's preview, or None. Known previews answer from memory; others are looked up."""
        with self._lock:
            tracker = self._trackers.get(workspace)
            if tracker is not None:
                return self._status(tracker)
        found, _ = self.observer.find(workspace)
        serving = sorted((p for p in found if p.serving), key=lambda p: p.created, reverse=True)
        if not serving:
            return None
        return self._adopt_found(serving[0], touch=False)

    def wait_ready(self, workspace: str, timeout: float) -> PreviewStatus:
        """Block until the workspace's preview is ready, failed or lost, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                tracker = self._trackers.get(workspace)
                if tracker is None:
                    raise KeyError(f"workspace {workspace!r} has no preview being started")
                status = self._status(tracker)
                remaining = deadline - time.monotonic()
                if status.phase.final or remaining <= 0 or self._closed.is_set():
                    return status
                self._changed.wait(timeout=min(remaining, 1.0))

    def previews(self, *, probe: bool = True) -> list[PreviewStatus]:
        """Every preview on every reachable host, plus the ones this process knows are lost or on their way."""
        views = self.observer.views()
        result: dict[str, PreviewStatus] = {}
        unknown: list[PreviewRecord] = []
        with self._lock:
            for view in views.values():
                for record in view.previews:
                    if not record.live or record.tombstone:
                        continue
                    tracker = self._trackers.get(record.workspace)
                    if tracker is not None and tracker.container_id == record.id:
                        result[record.workspace] = self._status(tracker)
                    else:
                        unknown.append(record)
            for workspace, tracker in self._trackers.items():
                if workspace not in result and (tracker.phase.active or self._status(tracker).phase is Phase.LOST):
                    result[workspace] = self._status(tracker)
        def phase_of(record: PreviewRecord) -> Phase:
            if record.state == "created":
                return Phase.PLACING
            if probe and record.state == "running" and record.public_port is not None:
                address = str(self.config.host(record.host).private_address)
                if http_answers(address, record.public_port, self.settings.frameworks[record.framework].ready_path,
                                timeout=1.0):
                    return Phase.READY
            return Phase.STARTING

        with ThreadPoolExecutor(max_workers=16) as pool:  # previews this process does not track: probe at once
            for record, phase in zip(unknown, pool.map(phase_of, unknown), strict=True):
                result.setdefault(record.workspace, self._record_status(record, phase))
        return sorted(result.values(), key=lambda s: (s.host or "", s.workspace))

    def hosts(self) -> list[HostStatus]:
        """Each host: reachable, healthy, cordoned, capacity used/free, previews, foreign objects."""
        views = self.observer.views()
        return [self._host_status(views[name]) for name in self.fleet.names]

    # -- maintenance ------------------------------------------------------------------------------

    def cordon(self, host: str, reason: str = "") -> None:
        maintenance.cordon(self.fleet[host], self.settings, reason=reason, now=_now())

    def uncordon(self, host: str) -> None:
        maintenance.uncordon(self.fleet[host])
        self._wake_queue()

    def drain(self, host: str, *, idle_s: float = 300.0, deadline_s: float = 1800.0, poll_s: float = 5.0,
              progress: Callable[[str], None] | None = None) -> maintenance.DrainReport:
        """Cordon ``host``, stop its previews as they go idle, and move the rest after ``deadline_s``."""
        return maintenance.drain(self, host, idle_s=idle_s, deadline_s=deadline_s, poll_s=poll_s,
                                 progress=progress or (lambda _m: None))

    def move(self, record: PreviewRecord, *, timeout: float | None = None) -> PreviewStatus:
        """Place a replacement for ``record`` on another host, wait until it is ready, then remove ``record``.
        On failure the original is left running. Used by ``drain``."""
        request = PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                                 project=record.project, resources=self._resources_of(record))
        with self._workspace_locks[record.workspace], self._lock:
            old = self._trackers.get(record.workspace)
            tracker = _Tracker(request=request, phase=Phase.PLACING, since=_now(), requested_at=time.monotonic(),
                               seq=next(self._sequence))
            if old is not None:
                tracker.generation = old.generation + 1
                self._leave_queue(old)
            self._trackers[record.workspace] = tracker
        worker = threading.Thread(target=lambda: self._place(tracker, exclude=frozenset({record.host}),
                                                             replacing=record.id),
                                  name=f"drape-move-{record.workspace}", daemon=True)
        worker.start()
        status = self.wait_ready(record.workspace, timeout or self.settings.frameworks[record.framework]
                                 .ready_timeout_s + self.settings.queue_timeout_s)
        if status.phase is Phase.READY:
            lifecycle.reap_one(self.fleet[record.host], record, now=_now(), persist_s=self.settings.persist_s,
                               force=True)
        return status

    # -- housekeeping (also run by the background threads) --------------------------------------------

    def flush_activity(self) -> int:
        """Write buffered activity to the hosts now. Returns how many previews were stamped."""
        pending = self._activity.take()
        if not pending:
            return 0
        written = 0
        unwritten: dict[str, datetime] = {}
        for workspace, moment in pending.items():
            with self._lock:
                tracker = self._trackers.get(workspace)
                where = (tracker.host, tracker.container_id) if tracker and tracker.container_id else None
            targets: list[tuple[str, str]] = []
            if where is not None and where[0] is not None and where[1] is not None:
                targets = [(where[0], where[1])]
            else:
                found, _ = self.observer.find(workspace)
                targets = [(p.host, p.id) for p in found if p.serving]
            for host, container_id in targets:
                try:
                    activity.write_stamp(self.fleet[host], container_id, moment)
                    written += 1
                except NotFound:
                    continue
                except (HostUnavailable, EngineError, APIError):
                    unwritten[workspace] = moment
        if unwritten:
            self._activity.put_back(unwritten)
        return written

    def reap(self) -> ReapReport:
        """One reaper pass: idle previews, duplicates after a failover, abandoned claims, dead containers,
        orphan networks. Safe to run from several processes at once (see ``reaper``)."""
        return reaper.reap(self)

    # ----------------------------------------------------------------------------------------------
    # Start: hot path, then placement
    # ----------------------------------------------------------------------------------------------

    def _start(self, request: PreviewRequest, *, prewarm: bool) -> PreviewStatus:
        workspace = request.workspace
        with self._workspace_locks[workspace]:
            with self._lock:
                tracker = self._trackers.get(workspace)
                if tracker is not None:
                    self._check_same(tracker.request, request)
                    if tracker.phase.active:
                        if not prewarm:
                            tracker.prewarm = False
                        return self._status(tracker)
            if tracker is not None and tracker.phase is Phase.READY and tracker.container_id and tracker.host:
                status = self._hot(tracker)
                if status is not None:
                    return status
            found, _ = self.observer.find(workspace)
            serving = sorted((p for p in found if p.serving), key=lambda p: p.created, reverse=True)
            for record in serving:
                self._check_same_record(record, request)
                status = self._adopt_found(record, touch=True)
                if status is not None:
                    return status
            with self._lock:
                if self._queue and len(self._queue) >= self.settings.queue_limit and not prewarm:
                    raise QueueFull(f"every host is full and {len(self._queue)} previews are waiting "
                                    f"(limit {self.settings.queue_limit}); try again later")
                tracker = _Tracker(request=request, phase=Phase.PLACING, since=_now(),
                                   requested_at=time.monotonic(), prewarm=prewarm, seq=next(self._sequence))
                self._trackers[workspace] = tracker
                self._spawn(lambda: self._place(tracker), f"drape-place-{workspace}")
                return self._status(tracker)

    def _hot(self, tracker: _Tracker) -> PreviewStatus | None:
        assert tracker.host is not None and tracker.container_id is not None
        engine = self.fleet[tracker.host]
        try:
            inspected = lifecycle.confirm(engine, tracker.container_id, tracker.request.workspace, _now())
        except (HostUnavailable, EngineError):
            inspected = None
        if inspected is None:
            return None
        self._activity.note(tracker.request.workspace)
        with self._lock:
            return self._status(tracker)

    def _adopt_found(self, record: PreviewRecord, *, touch: bool) -> PreviewStatus | None:
        """Take over a preview found on a host (made by another process, or before a restart)."""
        engine = self.fleet[record.host]
        if touch:
            try:
                inspected = lifecycle.confirm(engine, record.id, record.workspace, _now())
            except (HostUnavailable, EngineError):
                return None
            if inspected is None:
                return None
            port = lifecycle.published_port(inspected, record.port)
            record = replace(record, public_port=port)
        request = PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                                 project=record.project, resources=self._resources_of(record))
        framework = self.settings.frameworks[record.framework]
        address = str(self.config.host(record.host).private_address)
        ready = record.public_port is not None and http_answers(address, record.public_port, framework.ready_path,
                                                                timeout=1.0)
        with self._lock:
            tracker = _Tracker(request=request, phase=Phase.READY if ready else Phase.STARTING, since=_now(),
                               requested_at=time.monotonic(), host=record.host, container_id=record.id,
                               public_port=record.public_port, created=record.created)
            old = self._trackers.get(record.workspace)
            if old is not None:
                tracker.generation = old.generation + 1
                self._leave_queue(old)
            self._trackers[record.workspace] = tracker
            self._changed.notify_all()
            if not ready:
                generation = tracker.generation
                self._spawn(lambda: self._monitor(tracker, generation), f"drape-ready-{record.workspace}")
            return self._status(tracker)

    def _place(self, tracker: _Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
               ) -> None:
        """Find the preview a host (queueing while the fleet is full) and start it. Runs on its own thread."""
        request = tracker.request
        generation = tracker.generation
        deadline = time.monotonic() + self.settings.queue_timeout_s
        memory, cpus = request.resources.memory_bytes, request.resources.cpus
        excluded = set(exclude)
        failures: list[str] = []
        rounds_failed = 0
        try:
            while not self._closed.is_set():
                if not self._current(tracker, generation):
                    return
                if not self._wait_turn(tracker, generation, deadline, queue_if_busy=True):
                    return
                found, _ = self.observer.find(request.workspace)
                found = [p for p in found if p.id != replacing]
                usable = sorted((p for p in found if p.serving), key=lambda p: p.created, reverse=True)
                if usable and replacing is None and self._adopt_found(usable[0], touch=True) is not None:
                    return
                if self._in_flux(found):
                    self._pause(0.2, 0.8)
                    continue
                for record in found:
                    if not record.live or record.tombstone:
                        with contextlib.suppress(RuntimeFailure, APIError):
                            lifecycle.discard(self.fleet[record.host], record)
                views = self.observer.views()
                with self._lock:
                    order = candidates(views.values(), memory, cpus, cpu_overcommit=self.settings.cpu_overcommit,
                                       pending=self._pending, exclude=excluded)
                if not order:
                    if tracker.prewarm:
                        self._fail(tracker, generation, "not pre-warmed: every host is full (a start will queue)")
                        return
                    if not self._wait_capacity(tracker, generation, deadline):
                        return
                    continue
                placed = duplicate = False
                round_failures: list[str] = []
                for host in order:
                    with self._lock:
                        self._set(tracker, generation, Phase.PLACING)
                    result = self._claim_on(host, tracker, replacing=replacing)
                    if result.outcome is Outcome.PLACED and result.record is not None:
                        placed = self._started(tracker, generation, result.record)
                        if placed:
                            break
                        round_failures.append(f"{host}: could not start")
                    elif result.outcome is Outcome.DUPLICATE:
                        duplicate = True
                        break
                    elif result.outcome is Outcome.FAILED:
                        round_failures.append(result.reason)
                if placed:
                    return
                if duplicate:
                    self._pause(0.1, 0.6)
                    continue
                if round_failures and len(round_failures) == len(order):
                    failures.extend(round_failures)
                    rounds_failed += 1
                    if rounds_failed >= 3:
                        self._fail(tracker, generation, "; ".join(dict.fromkeys(failures)))
                        return
                    self._pause(0.2, 0.5)
            self._fail(tracker, generation, "the runtime was closed")
        except Exception as exc:  # a worker thread must always leave its tracker in a final phase
            self._fail(tracker, generation, f"placement failed: {exc}")
        finally:
            with self._lock:
                self._leave_queue(tracker)
                self._changed.notify_all()

    def _claim_on(self, host: str, tracker: _Tracker, *, replacing: str | None) -> lifecycle.ClaimResult:
        request = tracker.request
        engine = self.fleet[host]
        share = (request.resources.memory_bytes, request.resources.cpus)
        with self._lock:
            used = self._pending.get(host, (0, 0.0))
            self._pending[host] = (used[0] + share[0], used[1] + share[1])
        try:
            with self._host_locks[host]:
                result = lifecycle.claim(engine, self.config.host(host), request, self.settings,
                                         observer=self.observer, created=_now(), rng=self._rng)
            if result.outcome is not Outcome.PLACED or result.record is None:
                return result
            record = result.record
            others, _ = self.observer.find(request.workspace, hosts=[h for h in self.fleet.names if h != host])
            rivals = [p for p in others if p.id != replacing and p.live and not self._stale_tombstone(p)]
            if rivals:
                lifecycle.discard(engine, record)
                return lifecycle.ClaimResult(Outcome.DUPLICATE, reason=f"{request.workspace} is also on "
                                             f"{', '.join(sorted({p.host for p in rivals}))}")
            try:
                port = lifecycle.start(engine, record)
            except (APIError, EngineError) as exc:
                with contextlib.suppress(RuntimeFailure, APIError):
                    lifecycle.discard(engine, record)
                return lifecycle.ClaimResult(Outcome.FAILED, reason=f"{host}: start failed: {exc}")
            with contextlib.suppress(RuntimeFailure, APIError):
                activity.write_stamp(engine, record.id, _now())
            return lifecycle.ClaimResult(Outcome.PLACED, record=replace(record, public_port=port, state="running"))
        except HostUnavailable as exc:
            return lifecycle.ClaimResult(Outcome.FAILED, reason=str(exc))
        except (EngineError, APIError) as exc:
            return lifecycle.ClaimResult(Outcome.FAILED, reason=f"{host}: {exc}")
        finally:
            with self._lock:
                used = self._pending.get(host, (0, 0.0))
                self._pending[host] = (used[0] - share[0], used[1] - share[1])

    def _started(self, tracker: _Tracker, generation: int, record: PreviewRecord) -> bool:
        with self._lock:
            if not self._current(tracker, generation):
                stale = True
            else:
                stale = False
                tracker.host, tracker.container_id = record.host, record.id
                tracker.public_port, tracker.created = record.public_port, record.created
                self._set(tracker, generation, Phase.STARTING)
                self._leave_queue(tracker)
        if stale:  # stopped while it was being placed
            with contextlib.suppress(RuntimeFailure, APIError):
                lifecycle.discard(self.fleet[record.host], record)
            return True
        self._monitor(tracker, generation)
        return True

    def _monitor(self, tracker: _Tracker, generation: int) -> None:
        """Follow a started preview to ready (HTTP answers) or failed; re-place it if its host dies first."""
        with self._lock:
            host, container_id, port = tracker.host, tracker.container_id, tracker.public_port
        if host is None or container_id is None:
            return
        framework = self.settings.frameworks[tracker.request.framework]
        address = str(self.config.host(host).private_address)
        engine = self.fleet[host]
        deadline = time.monotonic() + framework.ready_timeout_s
        delay = 0.1
        down_since: float | None = None
        while not self._closed.is_set() and self._current(tracker, generation):
            if port is not None and http_answers(address, port, framework.ready_path, timeout=2.0):
                with self._lock:
                    self._set(tracker, generation, Phase.READY)
                return
            try:
                inspected = engine.call(lambda api: api.inspect_container(container_id), "inspect")
                state = inspected.get("State") or {}
                if port is None:
                    port = lifecycle.published_port(inspected, int(self.settings.frameworks[
                        tracker.request.framework].port))
                    with self._lock:
                        tracker.public_port = port
                if state.get("Status") in ("exited", "dead"):
                    _, why = read_phase(engine, container_id)  # the template's own reason, when it gave one
                    self._fail(tracker, generation, why or f"the dev server exited (code {state.get('ExitCode')}): "
                                                           f"{self._log_tail(host, container_id)}")
                    return
                phase, why = read_phase(engine, container_id)
                down_since = None
            except NotFound:
                self._fail(tracker, generation, "the container was removed while starting")
                return
            except (HostUnavailable, EngineError) as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= HOST_DEAD_S:
                    self._replace_lost(tracker, generation, host, str(exc))
                    return
                phase, why = None, None
            if phase is Phase.FAILED:
                self._fail(tracker, generation, why or "the dev server failed")
                return
            if phase is not None:
                with self._lock:
                    self._set(tracker, generation, phase)
            if time.monotonic() > deadline:
                self._fail(tracker, generation, f"not ready within {framework.ready_timeout_s:.0f} s")
                return
            self._closed.wait(delay)
            delay = min(delay * 1.5, 1.5)

    def _replace_lost(self, tracker: _Tracker, generation: int, host: str, why: str) -> None:
        """The host died before the preview was ready: place it again elsewhere (the request is not lost)."""
        with self._lock:
            if not self._current(tracker, generation):
                return
            tracker.generation += 1
            tracker.host = tracker.container_id = None
            tracker.public_port = None
            tracker.error = f"host {host} stopped answering ({why}); placing again"
            self._set(tracker, tracker.generation, Phase.PLACING)
        self._place(tracker, exclude=frozenset({host}))

    # ----------------------------------------------------------------------------------------------
    # Queue
    # ----------------------------------------------------------------------------------------------

    def _wait_turn(self, tracker: _Tracker, generation: int, deadline: float, *, queue_if_busy: bool) -> bool:
        """FIFO fairness: when others are already waiting, a newcomer queues behind them."""
        with self._changed:
            if tracker in self._queue:
                return self._wait_head(tracker, generation, deadline)
            if queue_if_busy and self._queue and not tracker.prewarm:
                self._enqueue(tracker, generation)
                return self._wait_head(tracker, generation, deadline)
            return True

    def _wait_capacity(self, tracker: _Tracker, generation: int, deadline: float) -> bool:
        with self._changed:
            if tracker not in self._queue:
                if len(self._queue) >= self.settings.queue_limit:
                    self._fail(tracker, generation, f"every host is full and the queue is at its limit "
                                                    f"({self.settings.queue_limit})")
                    return False
                self._enqueue(tracker, generation)
                return self._wait_head(tracker, generation, deadline)
            # Already the head and still no room: wait for a wake-up or the poll interval, then look again.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_queued(tracker, generation)
                return False
            self._changed.wait(timeout=min(remaining, QUEUE_POLL_S))
            return self._current(tracker, generation) and not self._closed.is_set()

    def _enqueue(self, tracker: _Tracker, generation: int) -> None:
        bisect.insort(self._queue, tracker, key=lambda t: t.seq)
        tracker.queued_at = time.monotonic()
        self._set(tracker, generation, Phase.QUEUED)

    def _wait_head(self, tracker: _Tracker, generation: int, deadline: float) -> bool:
        while True:
            if not self._current(tracker, generation) or self._closed.is_set():
                return False
            if self._queue and self._queue[0] is tracker:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_queued(tracker, generation)
                return False
            self._changed.wait(timeout=min(remaining, QUEUE_POLL_S))

    def _fail_queued(self, tracker: _Tracker, generation: int) -> None:
        waited = time.monotonic() - (tracker.queued_at or tracker.requested_at)
        self._fail(tracker, generation, f"no capacity on any host within {waited:.0f} s "
                                        f"(queue timeout {self.settings.queue_timeout_s:.0f} s)")

    def _leave_queue(self, tracker: _Tracker) -> None:
        if tracker in self._queue:
            self._queue.remove(tracker)
            self._changed.notify_all()

    def _wake_queue(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ----------------------------------------------------------------------------------------------
    # Trackers
    # ----------------------------------------------------------------------------------------------

    def _current(self, tracker: _Tracker, generation: int) -> bool:
        with self._lock:
            return (tracker.generation == generation
                    and self._trackers.get(tracker.request.workspace) is tracker)

    def _set(self, tracker: _Tracker, generation: int, phase: Phase) -> None:
        with self._lock:
            if tracker.generation != generation or tracker.phase is phase:
                return
            tracker.phase = phase
            tracker.since = _now()
            if phase is not Phase.FAILED:
                tracker.error = None if phase is not Phase.PLACING else tracker.error
            self._changed.notify_all()

    def _fail(self, tracker: _Tracker, generation: int, why: str) -> None:
        with self._lock:
            if tracker.generation != generation:
                return
            self._leave_queue(tracker)
            tracker.error = why
            self._set(tracker, generation, Phase.FAILED)

    def _status(self, tracker: _Tracker) -> PreviewStatus:
        with self._lock:
            request = tracker.request
            phase = tracker.phase
            error = tracker.error
            if tracker.host is not None and phase is Phase.READY and not self.fleet[tracker.host].available():
                phase = Phase.LOST
                error = f"host {tracker.host} is not answering: {self.fleet[tracker.host].health.last_error}"
            position = self._queue.index(tracker) + 1 if tracker in self._queue else None
            started = tracker.queued_at if position is not None and tracker.queued_at else tracker.requested_at
            url = None
            if tracker.host is not None and tracker.public_port is not None:
                url = f"http://{self.config.host(tracker.host).private_address}:{tracker.public_port}"
            return PreviewStatus(workspace=request.workspace, user=request.user, project=request.project,
                                 framework=request.framework, phase=phase, since=tracker.since, host=tracker.host,
                                 container_id=tracker.container_id, url=url, queue_position=position,
                                 waited_s=round(time.monotonic() - started, 3), error=error, created=tracker.created)

    def _record_status(self, record: PreviewRecord, phase: Phase) -> PreviewStatus:
        url = None
        if record.public_port is not None:
            url = f"http://{self.config.host(record.host).private_address}:{record.public_port}"
        return PreviewStatus(workspace=record.workspace, user=record.user, project=record.project,
                             framework=record.framework, phase=phase, since=record.created, host=record.host,
                             container_id=record.id, url=url, created=record.created)

    def _check_same(self, existing: PreviewRequest, request: PreviewRequest) -> None:
        if existing.user != request.user:
            raise WorkspaceConflict(f"workspace {request.workspace!r} has a preview of another user")
        if existing.framework != request.framework:
            raise WorkspaceConflict(f"workspace {request.workspace!r} runs {existing.framework}, not "
                                    f"{request.framework}: stop it first")

    def _check_same_record(self, record: PreviewRecord, request: PreviewRequest) -> None:
        self._check_same(PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                                        project=record.project, resources=request.resources), request)

    def _resources_of(self, record: PreviewRecord) -> PreviewResources:
        base = self.settings.preview
        return base.model_copy(update={"cpus": record.cpus, "memory_mib": max(64, record.memory // MIB)})

    def _in_flux(self, found: list[PreviewRecord]) -> bool:
        """Another process is placing this workspace (a fresh claim) or reaping it (a fresh tombstone)."""
        now = _now()
        for record in found:
            age = (now - record.created).total_seconds()
            if record.state == "created" and not record.tombstone and age < self.settings.claim_timeout_s:
                return True
            if record.tombstone and record.live and not self._stale_tombstone(record):
                return True
        return False

    def _stale_tombstone(self, record: PreviewRecord) -> bool:
        if not record.tombstone:
            return False
        first = self._tombstones_seen.setdefault(record.id, time.monotonic())
        return time.monotonic() - first > lifecycle.TOMBSTONE_GRACE_S

    def _is_tracked_failure(self, record: PreviewRecord) -> bool:
        """Keep a failed preview's container for a while so its logs can be read (the reaper removes it later)."""
        with self._lock:
            tracker = self._trackers.get(record.workspace)
            if tracker is None or tracker.container_id != record.id or tracker.phase is not Phase.FAILED:
                return False
            return (_now() - tracker.since).total_seconds() < FAILED_KEPT_S

    def _log_tail(self, host: str, container_id: str) -> str:
        try:
            data = self.fleet[host].call(lambda api: api.logs(container_id, tail=5), "logs")
        except (RuntimeFailure, APIError):
            return "(no logs)"
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        return " | ".join(line.strip() for line in text.strip().splitlines()[-5:]) or "(no output)"

    def _pause(self, low: float, high: float) -> None:
        self._closed.wait(self._rng.uniform(low, high))

    def _host_status(self, view: HostView) -> HostStatus:
        engine = self.fleet[view.name]
        return HostStatus(
            name=view.name, reachable=view.reachable, healthy=engine.health.healthy, error=view.error,
            cordoned=view.cordon is not None, cordon_reason=view.cordon.reason if view.cordon else None,
            memory_capacity=view.memory_capacity, memory_used=view.memory_used,
            cpu_capacity=view.cpu_capacity * self.settings.cpu_overcommit, cpus_used=view.cpus_used,
            previews=len(view.serving()), claims=sum(1 for p in view.previews if p.state == "created"),
            foreign=view.foreign, disk_limit=view.disk_limit,
            server_version=engine.facts.get("server_version"))

    # ----------------------------------------------------------------------------------------------
    # Background loops
    # ----------------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        if name in ("drape-health", "drape-activity", "drape-reaper"):
            self._threads.append(thread)

    def _health_loop(self) -> None:
        """Probe hosts in backoff when their delay has passed, and ping healthy ones every few seconds: a host
        whose network is cut (packets dropped, nothing refused) is otherwise noticed only by the next call."""
        in_flight: set[str] = set()
        last_ping = 0.0

        def probe(engine: Engine) -> None:
            try:
                if engine.probe():
                    self._wake_queue()
            finally:
                with self._lock:
                    in_flight.discard(engine.name)

        while not self._closed.wait(0.5):
            ping_healthy = time.monotonic() - last_ping >= HEALTH_PING_S
            if ping_healthy:
                last_ping = time.monotonic()
            for engine in self.fleet.engines():
                due = engine.available() and (not engine.health.healthy or ping_healthy)
                with self._lock:
                    if not due or engine.name in in_flight:
                        continue
                    in_flight.add(engine.name)
                self.fleet.submit(lambda e=engine: probe(e))  # type: ignore[misc]

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.settings.activity_flush_s):
            with contextlib.suppress(Exception):
                self.flush_activity()

    def _reaper_loop(self) -> None:
        interval = self.settings.reaper_interval_s
        while not self._closed.wait(interval * self._rng.uniform(0.8, 1.2)):
            with contextlib.suppress(Exception):
                self.reap()


def check_address_plan(config: FleetConfig) -> None:
    """Preview networks come from ``runtime.subnet_pool``; the engines' own networks from the provisioning's
    ``docker.address_pool`` and ``bridge_address``. An overlap would make network creation fail at random."""
    pool = IPv4Network(config.runtime.subnet_pool)
    docker = config.provisioning.docker
    for name, other in (("provisioning.docker.address_pool", docker.address_pool),
                        ("provisioning.docker.bridge_address", docker.bridge_address.network)):
        if pool.overlaps(other):
            raise ValueError(f"runtime.subnet_pool {pool} overlaps {name} {other}: give the previews a range of "
                             "their own, e.g. 10.240.0.0/16")
    for host in config.hosts:
        if host.private_address in pool or host.public_address in pool:
            raise ValueError(f"runtime.subnet_pool {pool} contains {host.name}'s address: pick another range")


def default_pki_dir(config: FleetConfig) -> Path:
    """Where the backend's client certificate lives for this environment (``drape_fleet.pki.paths``:
    ``$DRAPE_PKI_DIR``, else the lab's state directory, else ``~/.config/drape-fleet/pki``)."""
    from drape_fleet.pki.paths import pki_dir

    return pki_dir(config.environment.name)


@contextlib.contextmanager
def running(config: FleetConfig, **kwargs: Any) -> Iterator[PreviewRuntime]:
    runtime = PreviewRuntime.connect(config, **kwargs)
    try:
        yield runtime
    finally:
        runtime.close()
