"""``PreviewRuntime``: the thread-safe, synchronous facade the backend calls.

    runtime = PreviewRuntime.connect(load_fleet("config/production.toml"))
    status = runtime.start(workspace="ws-42", user="u-7", framework="nextjs")   # start or get
    runtime.project_opened(workspace="ws-42", user="u-7", framework="nextjs")   # pre-warm
    runtime.activity("ws-42")                                                   # the user is still here
    runtime.stop("ws-42")
    runtime.previews(); runtime.hosts()                                         # what runs where

Nothing is kept that the engines do not also know: a new ``PreviewRuntime`` over the same fleet sees every
preview (labels), its activity (stamp in the container), every cordon and every stop not yet applied (marker
volumes). What is kept in memory is a per-workspace *tracker* (phase, host, published port) that saves round
trips and lets callers wait, and a *watch* per host (its event stream) that placement ranks hosts with.

Background threads (daemon): each host's watch, host health checks, the activity flush, the reaper, and one
placement/readiness worker per preview on its way to ready.

This class only sequences the calls and keeps them thread-safe; the work is in the package's modules (see the
README's table). None of them imports this module.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from docker.errors import APIError

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import PreviewResources, RuntimeSettings
from drape_fleet.runtime import lifecycle, maintenance, reporting
from drape_fleet.runtime.activity import ActivityBuffer
from drape_fleet.runtime.addresses import Resolve, check_public_host, system_resolve
from drape_fleet.runtime.background import Loops, flush_buffered_activity, watch_health
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.engines import Endpoint, Engine, HostState, TlsFiles, tls_endpoints
from drape_fleet.runtime.errors import QueueFull, RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.launcher import Launcher, check_same
from drape_fleet.runtime.projects import ProjectSource
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.reaper import Reaper
from drape_fleet.runtime.spec import PreviewRequest, Secret, check_workspace, make_request
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import HostStatus, PreviewStatus, ReapReport, StopResult
from drape_fleet.runtime.stops import StopIntents, stop_everywhere
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import KeyedLocks, Tracker, Trackers
from drape_fleet.runtime.views import Observer
from drape_fleet.runtime.wait_queue import WaitQueue


class PreviewRuntime:
    """Place, keep and fail over previews across the fleet. Every public method is thread-safe.

    ``project_source(workspace, user, project)`` (optional): how the runtime gets a fresh repository token (and the
    environment, when the original's host is gone) for a replacement it makes itself (failover before ready, drain);
    see ``projects``. ``resolve``: how repository host names are resolved (tests give their own)."""

    def __init__(self, config: FleetConfig, fleet: Fleet, *, background: bool = True,
                 reaper: bool = True, rng: random.Random | None = None, clock: Clock = SYSTEM_CLOCK,
                 project_source: ProjectSource | None = None, resolve: Resolve = system_resolve) -> None:
        self.config = config
        self.settings: RuntimeSettings = config.runtime
        self.fleet = fleet
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter and subnet choice, not security
        self._resolve = resolve
        self._closed = threading.Event()
        self.observer = Observer(config, fleet, self.settings, closed=self._closed, rng=self._rng)
        self._workspace_locks = KeyedLocks()
        self._trackers = Trackers(config, fleet, clock)
        self._queue = WaitQueue(self._trackers, self.settings, self._closed, clock)
        tombstones = TombstoneSightings(clock)
        self._intents = StopIntents(self.settings, self.observer)
        self._launcher = Launcher(config, fleet, self.observer, self._trackers, self._queue, tombstones,
                                  self._intents, closed=self._closed, rng=self._rng, clock=clock,
                                  project_source=project_source)
        self._activity = ActivityBuffer(clock, keep_s=2 * self.settings.persist_s)
        self._reaper = Reaper(config, fleet, self.observer, self._trackers, tombstones, self._intents,
                              self._activity, on_freed=self._queue.wake, clock=clock)
        self._flushing = background
        fleet.on_change(self._host_changed)
        self.observer.start()
        self._loops = Loops(self._closed)
        if background:
            for name in fleet.names:  # spare network holders, so that the first starts set no network up
                self._launcher.claimer.keep_spares(name)
            self._loops.start(lambda: watch_health(fleet, self._closed), "drape-health")
            self._loops.repeat(self.flush_activity, lambda: self.settings.activity_flush_s, "drape-activity")
            if reaper:  # every 0.8-1.2 intervals: reapers of several processes drift apart
                self._loops.repeat(self.reap, lambda: self.settings.reaper_interval_s * self._rng.uniform(0.8, 1.2),
                                   "drape-reaper")

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
        fleet = Fleet.from_endpoints(endpoints, config.runtime, clock=kwargs.get("clock", SYSTEM_CLOCK))
        return cls(config, fleet, **kwargs)

    def close(self) -> None:
        self._closed.set()
        self._queue.wake()
        with contextlib.suppress(Exception):
            self.flush_activity()
        self._loops.join(timeout=2)
        self.observer.close()
        self._launcher.claimer.close()
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
              env: Mapping[str, str] | None = None, wait: float | None = None,
              repo_token: str | Secret | None = None) -> PreviewStatus:
        """Start the workspace's preview, or get the one it has. Returns at once (hot start: ``ready``; else
        the phase it is in) unless ``wait`` is given, then waits up to that many seconds for ready or failed.
        ``repo_token``: a token to clone ``repo`` with, handed to the preview as a file; never stored in labels,
        the container's configuration or logs.

        Raises ``BadRequest`` (unknown framework, unsafe ids, too large, a repository that is not a public
        https/git address), ``WorkspaceConflict`` (the workspace's preview belongs to another user or runs another
        framework) or ``QueueFull``."""
        request = make_request(self.settings, self.config.hosts, workspace=workspace, user=user,
                               framework=framework, project=project, resources=resources, repo=repo, ref=ref, env=env,
                               repo_token=repo_token)
        status = self._start(request, prewarm=False)
        if wait is not None and not status.phase.final:
            return self.wait_ready(workspace, wait)
        return status

    def project_opened(self, workspace: str, user: str, framework: str, *, project: str | None = None,
                       resources: PreviewResources | None = None, repo: str | None = None,
                       ref: str | None = None, env: Mapping[str, str] | None = None,
                       repo_token: str | Secret | None = None) -> PreviewStatus:
        """Pre-warm: start preparing the preview in the background when the user opens the project. A pre-warm
        never waits in the queue: when the fleet is full it gives up (phase ``failed``) and a later ``start``
        queues as usual."""
        request = make_request(self.settings, self.config.hosts, workspace=workspace, user=user,
                               framework=framework, project=project, resources=resources, repo=repo, ref=ref, env=env,
                               repo_token=repo_token)
        return self._start(request, prewarm=True)

    def activity(self, workspace: str) -> None:
        """The user is still here. O(1), no I/O: written to the hosts by the background flush."""
        self._activity.note(check_workspace(workspace))

    def stop(self, workspace: str) -> bool:
        """Stop and remove the workspace's preview. True if there was one (see ``stop_preview`` for the details)."""
        return self.stop_preview(workspace).removed

    def stop_preview(self, workspace: str) -> StopResult:
        """Stop and remove the workspace's preview on every host that answers, and remember the stop for the hosts
        that do not (applied when they answer again, by this process or any other: see ``stops``)."""
        workspace = check_workspace(workspace)
        with self._workspace_locks.hold(workspace):
            self._trackers.forget(workspace)
            self._activity.forget(workspace)
            result = stop_everywhere(workspace, self.fleet, self.observer, self._intents, self.settings,
                                     now=self._clock.now())
        self._queue.wake()
        return result

    def status(self, workspace: str) -> PreviewStatus | None:
        """The workspace's preview, or None. Known previews answer from memory, but a ``ready`` one only once its
        container is confirmed on its host (one inspect): another backend process may have stopped it, the reaper
        removed it, its dev server exited. Such a preview is forgotten and the workspace looked up like an
        unknown one: None, unless another process placed it anew. Others are looked up."""
        workspace = check_workspace(workspace)
        with self._trackers.lock:
            tracker = self._trackers.get(workspace)
            remembered = None if tracker is None else self._trackers.status(tracker)
        if tracker is not None and remembered is not None:
            if remembered.phase is not Phase.READY:
                return remembered
            if self._still_serving(remembered):
                return self._trackers.status(tracker)  # again: a host that just failed the check is now lost
            if self._trackers.forget_container(workspace, remembered.container_id or ""):
                self._queue.wake()  # its capacity is free: the queue's head looks again
        found, _ = self.observer.find(workspace)
        return self._launcher.adopt_newest(found, touch=False)

    def wait_ready(self, workspace: str, timeout: float) -> PreviewStatus:
        """Block until the workspace's preview is ready, failed or lost, or ``timeout`` passes."""
        return self._trackers.wait_final(workspace, timeout, self._closed)

    def previews(self, *, probe: bool = True) -> list[PreviewStatus]:
        """Every preview on every reachable host, plus the ones this process knows are lost or on their way."""
        return reporting.previews(self.config, self.observer, self._trackers, probe=probe)

    def hosts(self) -> list[HostStatus]:
        """Each host: reachable, health, cordoned, placeable (and why not), capacity used/free, foreign objects."""
        views = self.observer.fresh_views()
        return [reporting.host_status(self.config, views[name], self.fleet[name]) for name in self.fleet.names]

    # -- maintenance ------------------------------------------------------------------------------

    def cordon(self, host: str, reason: str = "") -> None:
        maintenance.cordon(self.fleet[host], self.settings, reason=reason, now=self._clock.now())
        with contextlib.suppress(RuntimeFailure):  # this process's ranking sees it at once (others: by events)
            self.observer.watch(host).refresh_volumes()

    def uncordon(self, host: str) -> None:
        maintenance.uncordon(self.fleet[host], self.settings)
        with contextlib.suppress(RuntimeFailure):
            self.observer.watch(host).refresh_volumes()
        self._queue.wake()

    def drain(self, host: str, *, idle_s: float = 300.0, deadline_s: float = 1800.0, poll_s: float = 5.0,
              progress: Callable[[str], None] | None = None) -> maintenance.DrainReport:
        """Cordon ``host``, stop its previews as they go idle, and move the rest after ``deadline_s``."""
        return maintenance.drain(self.fleet[host], self.observer, self.settings, move=self.move, clock=self._clock,
                                 idle_s=idle_s, deadline_s=deadline_s, poll_s=poll_s,
                                 progress=progress or (lambda _m: None))

    def move(self, record: PreviewRecord, *, timeout: float | None = None) -> PreviewStatus:
        """Place a replacement for ``record`` on another host, with the same project (``projects``), wait until it is
        ready, then remove ``record``. The original keeps serving until then, and stays when the replacement fails
        or its project cannot be rebuilt. Used by ``drain``."""
        with self._workspace_locks.hold(record.workspace):
            known = self._trackers.get(record.workspace)
            plan = maintenance.replacement(self.fleet[record.host], record, self.settings,
                                           remembered=known.request if known is not None else None,
                                           source=self._launcher.project_source, now=self._clock.now())
            if isinstance(plan, PreviewStatus):
                return plan
            tracker = self._trackers.replace(plan)
        self._launcher.launch(tracker, exclude=frozenset({record.host}), replacing=record.id,
                              thread_name=f"drape-move-{record.workspace}")
        status = self.wait_ready(record.workspace, timeout or self.settings.frameworks[record.framework]
                                 .ready_timeout_s + self.settings.queue_timeout_s)
        if status.phase is Phase.READY:
            lifecycle.reap_one(self.fleet[record.host], record, now=self._clock.now(),
                               persist_s=self.settings.persist_s, force=True, stop=True)
        else:  # the original still serves: this process follows it again, so status() says so
            self._launcher.adopt_newest([record], touch=False)
        return status

    # -- housekeeping (also run by the background threads) --------------------------------------------

    def flush_activity(self) -> int:
        """Write buffered activity to the hosts now. Returns how many containers were stamped."""
        return flush_buffered_activity(self._activity, self.observer, self.fleet)

    def reap(self) -> ReapReport:
        """One reaper pass: idle previews, duplicates after a failover, stops to finish, abandoned claims, dead
        containers, orphan networks. Safe to run from several processes at once (see ``reaper``)."""
        report = self._reaper.reap()
        for name in self.fleet.names:
            self._launcher.claimer.keep_spares(name)
        return report

    def _host_changed(self, engine: Engine, old: HostState, new: HostState) -> None:
        """A host answers again: the queue looks again, and stops it missed are applied now."""
        if new is not HostState.UP:
            return
        self._queue.wake()
        if old is HostState.DOWN or self._intents.pending():
            threading.Thread(target=lambda: self._apply_stops(engine.name), name=f"drape-back-{engine.name}",
                             daemon=True).start()

    def _apply_stops(self, host: str) -> None:
        with contextlib.suppress(Exception):
            if self._intents.all_markers():
                self._reaper.reap(hosts=[host])

    # ----------------------------------------------------------------------------------------------
    # Start: hot path, then placement (``launcher``)
    # ----------------------------------------------------------------------------------------------

    def _start(self, request: PreviewRequest, *, prewarm: bool) -> PreviewStatus:
        workspace = request.workspace
        with self._workspace_locks.hold(workspace):
            tracker = self._trackers.get(workspace)
            if tracker is not None:
                check_same(tracker.request.user, tracker.request.framework, request)
                joined = self._trackers.join(tracker, prewarm=prewarm)  # the start under way
                if joined is not None:
                    return joined
                if tracker.phase is Phase.READY and tracker.container_id and tracker.host:
                    hot = self._hot(tracker)
                    if hot is not None:
                        return hot
            found, unknown = self.observer.find(workspace)
            adopted = self._launcher.adopt_newest(found, touch=True, request=request)
            if adopted is not None:
                return adopted
            if request.repo_host is not None:  # before any host is touched; never on a hot start
                check_public_host(request.repo_host, resolve=self._resolve,
                                  allowed=self.settings.private_repo_networks)
            with self._trackers.lock:
                if self._queue.full() and not prewarm:
                    raise QueueFull(f"every host is full and {self._queue.length()} previews are waiting "
                                    f"(limit {self.settings.queue_limit}); try again later")
                tracker = self._trackers.start(request, prewarm=prewarm)
                self._launcher.launch(tracker, listing=(found, unknown))
                return self._trackers.status(tracker)

    def _still_serving(self, status: PreviewStatus) -> bool:
        """Does a preview this process remembers as ready still run on its host? When the host cannot tell now,
        memory's answer stands (``tracking`` reports a ready preview on a host that is down as lost)."""
        if status.host is None or status.container_id is None:
            return True
        try:
            return lifecycle.still_serving(self.fleet[status.host], status.container_id, status.workspace)
        except (RuntimeFailure, APIError):
            return True

    def _hot(self, tracker: Tracker) -> PreviewStatus | None:
        """The preview this process runs for the workspace, confirmed with one inspect (see ``lifecycle.confirm``);
        the stamp is written through first only when this process has not stamped that container for a while.
        None when it is gone or its host does not answer."""
        assert tracker.host is not None and tracker.container_id is not None
        workspace, container_id = tracker.request.workspace, tracker.container_id
        now = self._clock.now()
        known = [t for t in (self._activity.last_written(workspace, container_id), tracker.created) if t is not None]
        margin = self.settings.persist_s / 2 - self.settings.activity_flush_s
        fresh = self._flushing and bool(known) and (now - max(known)).total_seconds() < margin
        try:
            inspected = lifecycle.confirm(self.fleet[tracker.host], container_id, workspace, now, stamp=not fresh)
        except RuntimeFailure:
            inspected = None
        if inspected is None:
            return None
        if not fresh:
            self._activity.wrote(workspace, container_id, now)
        self._activity.note(workspace)
        return self._trackers.status(tracker)


def default_pki_dir(config: FleetConfig) -> Path:
    """Where the backend's client certificate lives for this environment (``drape_fleet.pki.paths``:
    ``$DRAPE_PKI_DIR``, else the lab's state directory, else ``~/.config/drape-fleet/pki``)."""
    from drape_fleet.pki.paths import pki_dir

    return pki_dir(config.environment.name)
