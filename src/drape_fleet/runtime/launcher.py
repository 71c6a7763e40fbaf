"""Taking a tracked preview to ready: find it a host (queueing while the fleet is full), claim it, start it, and
hand it to a ``follower`` until the dev server answers; place it again elsewhere if its host dies first. Also
taking over a preview found on a host (made by another process, or before a restart): ``adopt_newest`` is the
one place that does "the serving containers, newest first, adopt".

Each preview on its way to ready has a worker thread of its own; it writes to its tracker only while its
generation is current (see ``tracking``). The claim protocol that keeps hosts within capacity across
processes is ``lifecycle.claim``; the host ranking is ``placement.candidates``.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from docker.errors import APIError

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity, lifecycle
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Fleet
from drape_fleet.runtime.errors import EngineError, HostUnavailable, RuntimeFailure, WorkspaceConflict
from drape_fleet.runtime.follower import Follower
from drape_fleet.runtime.lifecycle import ClaimResult, Outcome
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.readiness import Phase, http_answers
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import Tracker, Trackers
from drape_fleet.runtime.views import Observer
from drape_fleet.runtime.wait_queue import WaitQueue

MIB = 1024 * 1024


def request_of(record: PreviewRecord, settings: RuntimeSettings) -> PreviewRequest:
    """The request a found preview answers, from its labels: to take it over or to place it again."""
    resources = settings.preview.model_copy(update={"cpus": record.cpus,
                                                    "memory_mib": max(64, record.memory // MIB)})
    return PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                          project=record.project, resources=resources)


def check_same(user: str, framework: str, request: PreviewRequest) -> None:
    """A workspace has one preview: of one user, running one framework."""
    if user != request.user:
        raise WorkspaceConflict(f"workspace {request.workspace!r} has a preview of another user")
    if framework != request.framework:
        raise WorkspaceConflict(f"workspace {request.workspace!r} runs {framework}, not "
                                f"{request.framework}: stop it first")


def _spawn(target: Callable[[], None], name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


class Launcher:
    def __init__(self, config: FleetConfig, fleet: Fleet, observer: Observer, trackers: Trackers,
                 queue: WaitQueue, tombstones: TombstoneSightings, *, closed: threading.Event,
                 rng: random.Random, clock: Clock) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._observer = observer
        self._trackers = trackers
        self._queue = queue
        self._tombstones = tombstones
        self._closed = closed
        self._rng = rng
        self._clock = clock
        self._follower = Follower(config, fleet, trackers, closed=closed, clock=clock)
        self._host_locks = {name: threading.Lock() for name in fleet.names}
        self._pending: dict[str, tuple[int, float]] = {}
        """Per host: memory and cores of claims this process is making right now (ranked as used)."""

    def launch(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
               listing: list[PreviewRecord] | None = None, thread_name: str | None = None) -> None:
        """Place ``tracker``'s preview on a worker thread of its own. ``listing``: the workspace's containers as
        the caller just found them, having taken over none (the first round does not list them again)."""
        _spawn(lambda: self.place(tracker, exclude=exclude, replacing=replacing, listing=listing),
               thread_name or f"drape-place-{tracker.request.workspace}")

    # -- taking over what runs already ------------------------------------------------------------

    def adopt_newest(self, found: Iterable[PreviewRecord], *, touch: bool,
                     request: PreviewRequest | None = None) -> PreviewStatus | None:
        """Take over the newest of ``found`` that serves (the older ones are surplus after a failover, for the
        reaper). With ``touch`` (a start) each is confirmed and stamped first, and the next is tried when it is
        no longer the preview. With ``request``, a preview of another user or framework raises
        ``WorkspaceConflict``. None when nothing serves."""
        for record in sorted((p for p in found if p.serving), key=lambda p: p.created, reverse=True):
            if request is not None:
                check_same(record.user, record.framework, request)
            status = self._adopt(record, touch=touch)
            if status is not None:
                return status
        return None

    def _adopt(self, record: PreviewRecord, *, touch: bool) -> PreviewStatus | None:
        engine = self._fleet[record.host]
        if touch:
            try:
                inspected = lifecycle.confirm(engine, record.id, record.workspace, self._clock.now())
            except (HostUnavailable, EngineError):
                return None
            if inspected is None:
                return None
            record = replace(record, public_port=lifecycle.published_port(inspected, record.port))
        framework = self._settings.frameworks[record.framework]
        address = str(self._config.host(record.host).private_address)
        ready = record.public_port is not None and http_answers(address, record.public_port, framework.ready_path,
                                                                timeout=1.0)
        with self._trackers.lock:
            tracker = self._trackers.take_over(request_of(record, self._settings), record, ready=ready)
            generation = tracker.generation
            status = self._trackers.status(tracker)
        if not ready:
            _spawn(lambda: self._follow(tracker, generation), f"drape-ready-{record.workspace}")
        return status

    # -- placing ----------------------------------------------------------------------------------

    def place(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
              listing: list[PreviewRecord] | None = None) -> None:
        """Find the preview a host (queueing while the fleet is full) and start it. Runs on its own thread."""
        request = tracker.request
        generation = tracker.generation
        deadline = self._clock.monotonic() + self._settings.queue_timeout_s
        memory, cpus = request.resources.memory_bytes, request.resources.cpus
        failures: list[str] = []
        rounds_failed = 0
        try:
            while not self._closed.is_set():
                if not self._trackers.current(tracker, generation):
                    return
                if not self._queue.wait_turn(tracker, generation, deadline, queue_if_busy=True):
                    return
                if listing is not None and tracker.queued_at is None:
                    found = listing  # just listed by the caller, who took over nothing
                else:
                    found, _ = self._observer.find(request.workspace)
                    if replacing is None and self.adopt_newest(found, touch=True, request=request) is not None:
                        return
                listing = None
                found = [p for p in found if p.id != replacing]
                if self._in_flux(found):
                    self._pause(0.2, 0.8)
                    continue
                for record in found:
                    if not record.live or record.tombstone:
                        with contextlib.suppress(RuntimeFailure, APIError):
                            lifecycle.discard(self._fleet[record.host], record)
                views = self._observer.views()
                with self._trackers.lock:
                    order = candidates(views.values(), memory, cpus, cpu_overcommit=self._settings.cpu_overcommit,
                                       pending=self._pending, exclude=exclude)
                if not order:
                    if tracker.prewarm:
                        self._trackers.fail(tracker, generation,
                                            "not pre-warmed: every host is full (a start will queue)")
                        return
                    if not self._queue.wait_capacity(tracker, generation, deadline):
                        return
                    continue
                outcome, round_failures = self._try_hosts(order, tracker, generation, replacing)
                if outcome is Outcome.PLACED:
                    return
                if outcome is Outcome.DUPLICATE:
                    self._pause(0.1, 0.6)
                    continue
                if round_failures and len(round_failures) == len(order):
                    failures.extend(round_failures)
                    rounds_failed += 1
                    if rounds_failed >= 3:
                        self._trackers.fail(tracker, generation, "; ".join(dict.fromkeys(failures)))
                        return
                    self._pause(0.2, 0.5)
            self._trackers.fail(tracker, generation, "the runtime was closed")
        except Exception as exc:  # a worker thread must always leave its tracker in a final phase
            self._trackers.fail(tracker, generation, f"placement failed: {exc}")
        finally:
            self._trackers.leave_line(tracker)
            self._queue.wake()

    def _try_hosts(self, order: list[str], tracker: Tracker, generation: int,
                   replacing: str | None) -> tuple[Outcome, list[str]]:
        """Claim on each host in ``order`` until one takes the preview: PLACED (and followed to ready or
        failed), DUPLICATE (another process is placing the workspace: look again), or FULL with the failures."""
        failures: list[str] = []
        for host in order:
            self._trackers.set_phase(tracker, generation, Phase.PLACING)
            result = self._claim_on(host, tracker, replacing=replacing)
            if result.outcome is Outcome.PLACED and result.record is not None:
                self._started(tracker, generation, result.record)
                return Outcome.PLACED, failures
            if result.outcome is Outcome.DUPLICATE:
                return Outcome.DUPLICATE, failures
            if result.outcome is Outcome.FAILED:
                failures.append(result.reason)
        return Outcome.FULL, failures

    def _in_flux(self, found: list[PreviewRecord]) -> bool:
        """Another process is placing this workspace (a fresh claim) or reaping it (a fresh tombstone)."""
        now = self._clock.now()
        for record in found:
            age = (now - record.created).total_seconds()
            if record.state == "created" and not record.tombstone and age < self._settings.claim_timeout_s:
                return True
            if record.tombstone and record.live and not self._tombstones.stale(record):
                return True
        return False

    def _claim_on(self, host: str, tracker: Tracker, *, replacing: str | None) -> ClaimResult:
        request = tracker.request
        engine = self._fleet[host]
        share = (request.resources.memory_bytes, request.resources.cpus)
        with self._trackers.lock:
            used = self._pending.get(host, (0, 0.0))
            self._pending[host] = (used[0] + share[0], used[1] + share[1])
        try:
            with self._host_locks[host]:
                result = lifecycle.claim(engine, self._config.host(host), request, self._settings,
                                         observer=self._observer, created=self._clock.now(), rng=self._rng)
            if result.outcome is not Outcome.PLACED or result.record is None:
                return result
            record = result.record
            others, _ = self._observer.find(request.workspace, hosts=[h for h in self._fleet.names if h != host])
            rivals = [p for p in others if p.id != replacing and p.live and not self._tombstones.stale(p)]
            if rivals:
                lifecycle.discard(engine, record)
                return ClaimResult(Outcome.DUPLICATE, reason=f"{request.workspace} is also on "
                                   f"{', '.join(sorted({p.host for p in rivals}))}")
            try:
                port = lifecycle.start(engine, record)
            except (APIError, EngineError) as exc:
                with contextlib.suppress(RuntimeFailure, APIError):
                    lifecycle.discard(engine, record)
                return ClaimResult(Outcome.FAILED, reason=f"{host}: start failed: {exc}")
            with contextlib.suppress(RuntimeFailure, APIError):
                activity.write_stamp(engine, record.id, self._clock.now())
            return ClaimResult(Outcome.PLACED, record=replace(record, public_port=port, state="running"))
        except HostUnavailable as exc:
            return ClaimResult(Outcome.FAILED, reason=str(exc))
        except (EngineError, APIError) as exc:
            return ClaimResult(Outcome.FAILED, reason=f"{host}: {exc}")
        finally:
            with self._trackers.lock:
                used = self._pending.get(host, (0, 0.0))
                self._pending[host] = (used[0] - share[0], used[1] - share[1])

    def _started(self, tracker: Tracker, generation: int, record: PreviewRecord) -> None:
        if not self._trackers.started(tracker, generation, record):  # stopped while it was being placed
            with contextlib.suppress(RuntimeFailure, APIError):
                lifecycle.discard(self._fleet[record.host], record)
            return
        self._follow(tracker, generation)

    # -- to ready, or elsewhere ---------------------------------------------------------------------

    def _follow(self, tracker: Tracker, generation: int) -> None:
        self._follower.follow(tracker, generation, self._place_again)

    def _place_again(self, tracker: Tracker, generation: int, host: str, why: str) -> None:
        """The host died before the preview was ready: place it again elsewhere (the request is not lost)."""
        if self._trackers.place_again(tracker, generation, f"host {host} stopped answering ({why}); "
                                                           "placing again") is not None:
            self.place(tracker, exclude=frozenset({host}))

    def _pause(self, low: float, high: float) -> None:
        self._closed.wait(self._rng.uniform(low, high))
