"""Taking a tracked preview to ready: find it a host (queueing while the fleet is full), claim it (``claims``), and
hand it to a ``follower`` until the dev server answers; place it again elsewhere if its host goes down first. Also
taking over a preview found on a host (made by another process, or before a restart): ``adopt_newest`` is the
one place that does "the serving containers, newest ready first, adopt".

Each preview on its way to ready has a worker thread of its own; it writes to its tracker only while its
generation is current (see ``tracking``). Every round of the placement loop checks the request's deadline: no
outcome (a busy workspace, a host that does not answer, a claim that keeps colliding) retries forever.

A slow host is not an empty host: when a host that may hold the workspace does not answer the look-up, the
loop waits for it (its health checks decide within seconds whether it is down, and a down host's previews are
placed again elsewhere) instead of placing a second copy of a workspace that may be running there.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from docker.errors import APIError

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime import lifecycle
from drape_fleet.runtime.claims import Claimer
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.errors import RuntimeFailure, WorkspaceConflict
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.follower import Follower
from drape_fleet.runtime.lifecycle import Outcome
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.projects import ProjectSource, Rebuilt, completed, request_of
from drape_fleet.runtime.readiness import Phase, is_ready
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.runtime.stops import StopIntents
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import Tracker, Trackers
from drape_fleet.runtime.untrusted import safe_text
from drape_fleet.runtime.views import Observer
from drape_fleet.runtime.wait_queue import WaitQueue


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
                 queue: WaitQueue, tombstones: TombstoneSightings, stops: StopIntents, *, closed: threading.Event,
                 rng: random.Random, clock: Clock, project_source: ProjectSource | None = None) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._observer = observer
        self._trackers = trackers
        self._queue = queue
        self._tombstones = tombstones
        self._stops = stops
        self._closed = closed
        self._rng = rng
        self._clock = clock
        self.project_source = project_source
        self.claimer = Claimer(config, fleet, observer, tombstones, stops, closed=closed, rng=rng, clock=clock)
        self._follower = Follower(config, fleet, trackers, closed=closed, clock=clock)

    def launch(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
               listing: tuple[list[PreviewRecord], list[str]] | None = None, thread_name: str | None = None) -> None:
        """Place ``tracker``'s preview on a worker thread of its own. ``listing``: the workspace's containers and
        unknown hosts as the caller just found them, having taken over none (the first round does not look again)."""
        _spawn(lambda: self.place(tracker, exclude=exclude, replacing=replacing, listing=listing),
               thread_name or f"drape-place-{tracker.request.workspace}")

    # -- taking over what runs already ------------------------------------------------------------

    def adopt_newest(self, found: Iterable[PreviewRecord], *, touch: bool,
                     request: PreviewRequest | None = None) -> PreviewStatus | None:
        """Take over the newest of ``found`` that serves and is ready, else the newest that serves (the older ones
        are surplus after a failover, for the reaper; a copy a stop covers is never taken). With ``touch`` (a start)
        each is confirmed and stamped first, and the next is tried when it is no longer the preview. With
        ``request``, a preview of another user or framework raises ``WorkspaceConflict``. None when nothing serves."""
        stops = self._stops.all_markers()
        serving = sorted((p for p in found if p.serving and not self._stops.covers(p, stops)),
                         key=lambda p: p.created, reverse=True)
        if request is not None:
            for record in serving:
                check_same(record.user, record.framework, request)
        taken: list[tuple[PreviewRecord, dict[str, object] | None]] = []
        for record in serving:
            inspected = None
            if touch:
                try:
                    inspected = lifecycle.confirm(self._fleet[record.host], record.id, record.workspace,
                                                  self._clock.now(), stamp=True)
                except RuntimeFailure:
                    continue
                if inspected is None:
                    continue
                record = replace(record, public_port=lifecycle.published_port(inspected, record.port)
                                 or record.public_port)  # in a holder's namespace: the holder's port, labelled
            if self._answers(record):
                return self._adopt(record, inspected, ready=True, request=request)
            taken.append((record, inspected))
        if taken:
            record, inspected = taken[0]
            return self._adopt(record, inspected, ready=False, request=request)
        return None

    def _answers(self, record: PreviewRecord) -> bool:
        if record.public_port is None:
            return False
        address = str(self._config.host(record.host).private_address)
        return is_ready(self._fleet[record.host], record.id, address, record.public_port,
                        self._settings.frameworks[record.framework], budget=self._settings.preview_read_timeout_s)

    def _adopt(self, record: PreviewRecord, inspected: dict[str, object] | None, *, ready: bool,
               request: PreviewRequest | None) -> PreviewStatus:
        remembered = request
        if remembered is None:
            known = self._trackers.get(record.workspace)
            remembered = known.request if known is not None else None
        rebuilt = request_of(record, self._settings, inspected=inspected, remembered=remembered)
        with self._trackers.lock:
            tracker = self._trackers.take_over(rebuilt.request, record, ready=ready, missing=rebuilt.missing)
            generation = tracker.generation
            status = self._trackers.status(tracker)
        if not ready:
            _spawn(lambda: self._follow(tracker, generation), f"drape-ready-{record.workspace}")
        return status

    # -- placing ----------------------------------------------------------------------------------

    def place(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
              listing: tuple[list[PreviewRecord], list[str]] | None = None) -> None:
        """Find the preview a host (queueing while the fleet is full) and start it. Runs on its own thread."""
        request = tracker.request
        generation = tracker.generation
        deadline = self._clock.monotonic() + self._settings.queue_timeout_s
        failures: list[str] = []
        rounds_failed = 0
        waiting_on = ""
        try:
            while not self._closed.is_set():
                if not self._trackers.current(tracker, generation):
                    return
                if self._clock.monotonic() > deadline:
                    if self._trackers.in_line(tracker):
                        self._queue.give_up(tracker, generation)
                        return
                    why = waiting_on or "; ".join(dict.fromkeys(failures)) or tracker.error or "no host took it"
                    self._trackers.fail(tracker, generation, f"not placed within {self._settings.queue_timeout_s:.0f}"
                                                             f" s: {why}")
                    return
                if not self._queue.wait_turn(tracker, generation, deadline, queue_if_busy=True):
                    return
                if listing is not None and tracker.queued_at is None:
                    found, unknown = listing  # just looked up by the caller, who took over nothing
                else:
                    found, unknown = self._observer.find(request.workspace)
                    if replacing is None and self.adopt_newest(found, touch=True, request=request) is not None:
                        return
                listing = None
                withdrawn = self.claimer.withdrawn()  # this process's own failed claims, being removed
                self._clear_withdrawn([p for p in found if p.id in withdrawn])
                found = [p for p in found if p.id != replacing and p.id not in withdrawn]
                if unknown:
                    waiting_on = f"{', '.join(unknown)} did not answer whether {request.workspace} runs there"
                    self._trackers.note(tracker, generation, waiting_on)
                    self._pause(0.3, 0.8)
                    continue
                waiting_on = ""
                if self._in_flux(found):
                    self._pause(0.2, 0.8)
                    continue
                self._clear(found)
                outcome = self._round(tracker, generation, exclude, replacing, deadline, failures)
                if outcome is None:
                    return
                if outcome is Outcome.FAILED:
                    rounds_failed += 1
                    if rounds_failed >= 3:
                        self._trackers.fail(tracker, generation, "; ".join(dict.fromkeys(failures)))
                        return
                    self._pause(0.2, 0.5)
                elif outcome in (Outcome.DUPLICATE, Outcome.UNSURE):
                    self._pause(0.1, 0.6)
            self._trackers.fail(tracker, generation, "the runtime was closed")
        except Exception as exc:  # a worker thread must always leave its tracker in a final phase
            self._trackers.fail(tracker, generation, f"placement failed: {safe_text(str(exc))}")
        finally:
            self._trackers.leave_line(tracker)
            self._queue.wake()

    def _round(self, tracker: Tracker, generation: int, exclude: frozenset[str], replacing: str | None,
               deadline: float, failures: list[str]) -> Outcome | None:
        """Rank the hosts and try them in order. None: the worker is done (placed, failed, gave up)."""
        request = tracker.request
        views = self._observer.views()
        with self._trackers.lock:
            order = candidates(views.values(), request.resources.memory_bytes, request.resources.cpus,
                               cpu_overcommit=self._settings.cpu_overcommit, pending=self.claimer.pending(),
                               exclude=exclude)
        if not order:
            if all(v.unplaceable for v in views.values()):  # not full: closed, each for its reason
                closed = "; ".join(f"{v.name}: {v.unplaceable}" for v in views.values())
                self._trackers.note(tracker, generation, safe_text(f"no host takes previews now: {closed}", 600))
            if tracker.prewarm:
                self._trackers.fail(tracker, generation, "not pre-warmed: every host is full (a start will queue)")
                return None
            return Outcome.FULL if self._queue.wait_capacity(tracker, generation, deadline) else None
        outcome, round_failures = self._try_hosts(order, tracker, generation, replacing)
        if outcome is Outcome.PLACED:
            return None
        failures.extend(round_failures)
        if round_failures and len(round_failures) == len(order):
            return Outcome.FAILED
        return outcome

    def _clear(self, found: list[PreviewRecord]) -> None:
        """What of the workspace is in the way and may go: exited copies, stops half done, copies a stop covers,
        claims abandoned longer than ``claim_timeout_s``. A reaper's tombstone is not among them: only the reaper
        removes one, after checking its activity."""
        stops = self._stops.all_markers()
        now = self._clock.now()
        for record in found:
            abandoned = record.state == "created" and not record.tombstone \
                and (now - record.created).total_seconds() > self._settings.claim_timeout_s
            if not record.live or record.stopping or abandoned or self._stops.covers(record, stops):
                with contextlib.suppress(RuntimeFailure, APIError):
                    lifecycle.discard(self._fleet[record.host], record)

    def _clear_withdrawn(self, records: list[PreviewRecord]) -> None:
        """This process's failed claims that are still there (their removal failed, e.g. during an engine restart):
        in the way of the workspace's name, removed now."""
        for record in records:
            if record.state == "created" and lifecycle.quietly_discard(self._fleet[record.host], record.id, None):
                self.claimer.removed(record.id)

    def _try_hosts(self, order: list[str], tracker: Tracker, generation: int,
                   replacing: str | None) -> tuple[Outcome, list[str]]:
        """Claim on each host in ``order`` until one takes the preview: PLACED (and followed to ready or
        failed), DUPLICATE/UNSURE (look again), or FULL with the failures."""
        failures: list[str] = []
        for host in order:
            if not self._trackers.current(tracker, generation):
                return Outcome.PLACED, failures  # stopped meanwhile: nothing more to do
            self._trackers.set_phase(tracker, generation, Phase.PLACING)
            result = self.claimer.claim(host, tracker.request, created=self._clock.now(), replacing=replacing)
            if result.outcome is Outcome.PLACED and result.record is not None:
                self._started(tracker, generation, result.record)
                return Outcome.PLACED, failures
            if result.outcome in (Outcome.DUPLICATE, Outcome.UNSURE):
                self._trackers.note(tracker, generation, result.reason)
                return result.outcome, failures
            if result.outcome is Outcome.FAILED:
                failures.append(safe_text(result.reason, 400))
        return Outcome.FULL, failures

    def _in_flux(self, found: list[PreviewRecord]) -> bool:
        """Another process is placing this workspace (a fresh claim) or reaping it (a fresh tombstone)."""
        now = self._clock.now()
        for record in found:
            age = (now - record.created).total_seconds()
            if record.state == "created" and not record.tombstone and age < self._settings.claim_timeout_s:
                return True
            if record.tombstone and not record.stopping and record.live and not self._tombstones.stale(record):
                return True
        return False

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
        """The host went down before the preview was ready: place the same request again elsewhere, if this
        process knows all of it (or the backend's ``project_source`` completes it); else report it lost."""
        missing = tracker.missing
        if missing:
            rebuilt = completed(Rebuilt(tracker.request, missing), self.project_source)
            if not rebuilt.complete:
                self._trackers.lose(tracker, generation, f"host {host} went down ({safe_text(why)}); "
                                    f"{rebuilt.why()}")
                return
            self._trackers.complete(tracker, generation, rebuilt.request)
        if self._trackers.place_again(tracker, generation, f"host {host} went down ({safe_text(why)}); "
                                                           "placing again") is not None:
            self.place(tracker, exclude=frozenset({host}))

    def _pause(self, low: float, high: float) -> None:
        self._closed.wait(self._rng.uniform(low, high))
