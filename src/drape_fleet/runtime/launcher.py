"""Taking a tracked preview to ready: find it a host (queueing while the fleet is full), claim it, start it,
follow it until the dev server answers, and place it again elsewhere if its host dies first. Also taking over
a preview found on a host (made by another process, or before a restart).

Each preview on its way to ready has a worker thread of its own; it writes to its tracker only while its
generation is current (see ``tracking``). The claim protocol that keeps hosts within capacity across
processes is ``lifecycle.claim``; the host ranking is ``placement.candidates``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from docker.errors import APIError, NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import activity, lifecycle
from drape_fleet.runtime.engines import Fleet
from drape_fleet.runtime.errors import EngineError, HostUnavailable, RuntimeFailure
from drape_fleet.runtime.lifecycle import Outcome
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.readiness import Phase, http_answers, read_phase
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.tracking import Tracker, Trackers
from drape_fleet.runtime.views import Observer
from drape_fleet.runtime.wait_queue import WaitQueue

MIB = 1024 * 1024
HOST_DEAD_S = 6.0
"""A starting preview whose host has not answered for this long is placed again elsewhere."""


def _now() -> datetime:
    return datetime.now(UTC)


def request_of(record: PreviewRecord, settings: RuntimeSettings) -> PreviewRequest:
    """The request a found preview answers, from its labels: to take it over or to place it again."""
    resources = settings.preview.model_copy(update={"cpus": record.cpus,
                                                    "memory_mib": max(64, record.memory // MIB)})
    return PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                          project=record.project, resources=resources)


def _spawn(target: Callable[[], None], name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


class Launcher:
    def __init__(self, config: FleetConfig, fleet: Fleet, observer: Observer, trackers: Trackers,
                 queue: WaitQueue, tombstones: TombstoneSightings, *, closed: threading.Event,
                 rng: random.Random) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._observer = observer
        self._trackers = trackers
        self._queue = queue
        self._tombstones = tombstones
        self._closed = closed
        self._rng = rng
        self._host_locks = {name: threading.Lock() for name in fleet.names}
        self._pending: dict[str, tuple[int, float]] = {}
        """Per host: memory and cores of claims this process is making right now (ranked as used)."""

    def launch(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
               thread_name: str | None = None) -> None:
        """Place ``tracker``'s preview on a worker thread of its own."""
        _spawn(lambda: self.place(tracker, exclude=exclude, replacing=replacing),
               thread_name or f"drape-place-{tracker.request.workspace}")

    def adopt(self, record: PreviewRecord, *, touch: bool) -> PreviewStatus | None:
        """Take over a preview found on a host (made by another process, or before a restart). With ``touch``
        (a start), the container is confirmed and stamped first; None when it is no longer the preview."""
        engine = self._fleet[record.host]
        if touch:
            try:
                inspected = lifecycle.confirm(engine, record.id, record.workspace, _now())
            except (HostUnavailable, EngineError):
                return None
            if inspected is None:
                return None
            port = lifecycle.published_port(inspected, record.port)
            record = replace(record, public_port=port)
        request = request_of(record, self._settings)
        framework = self._settings.frameworks[record.framework]
        address = str(self._config.host(record.host).private_address)
        ready = record.public_port is not None and http_answers(address, record.public_port, framework.ready_path,
                                                                timeout=1.0)
        with self._trackers.lock:
            tracker = Tracker(request=request, phase=Phase.READY if ready else Phase.STARTING, since=_now(),
                              requested_at=time.monotonic(), host=record.host, container_id=record.id,
                              public_port=record.public_port, created=record.created)
            self._trackers.supersede(tracker)
            if not ready:
                generation = tracker.generation
                _spawn(lambda: self._follow(tracker, generation), f"drape-ready-{record.workspace}")
            return self._trackers.status(tracker)

    def place(self, tracker: Tracker, *, exclude: frozenset[str] = frozenset(), replacing: str | None = None,
              ) -> None:
        """Find the preview a host (queueing while the fleet is full) and start it. Runs on its own thread."""
        request = tracker.request
        generation = tracker.generation
        deadline = time.monotonic() + self._settings.queue_timeout_s
        memory, cpus = request.resources.memory_bytes, request.resources.cpus
        excluded = set(exclude)
        failures: list[str] = []
        rounds_failed = 0
        try:
            while not self._closed.is_set():
                if not self._trackers.current(tracker, generation):
                    return
                if not self._queue.wait_turn(tracker, generation, deadline, queue_if_busy=True):
                    return
                found, _ = self._observer.find(request.workspace)
                found = [p for p in found if p.id != replacing]
                usable = sorted((p for p in found if p.serving), key=lambda p: p.created, reverse=True)
                if usable and replacing is None and self.adopt(usable[0], touch=True) is not None:
                    return
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
                                       pending=self._pending, exclude=excluded)
                if not order:
                    if tracker.prewarm:
                        self._trackers.fail(tracker, generation,
                                            "not pre-warmed: every host is full (a start will queue)")
                        return
                    if not self._queue.wait_capacity(tracker, generation, deadline):
                        return
                    continue
                placed = duplicate = False
                round_failures: list[str] = []
                for host in order:
                    self._trackers.set_phase(tracker, generation, Phase.PLACING)
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
                        self._trackers.fail(tracker, generation, "; ".join(dict.fromkeys(failures)))
                        return
                    self._pause(0.2, 0.5)
            self._trackers.fail(tracker, generation, "the runtime was closed")
        except Exception as exc:  # a worker thread must always leave its tracker in a final phase
            self._trackers.fail(tracker, generation, f"placement failed: {exc}")
        finally:
            self._trackers.leave_line(tracker)
            self._queue.wake()

    def _in_flux(self, found: list[PreviewRecord]) -> bool:
        """Another process is placing this workspace (a fresh claim) or reaping it (a fresh tombstone)."""
        now = _now()
        for record in found:
            age = (now - record.created).total_seconds()
            if record.state == "created" and not record.tombstone and age < self._settings.claim_timeout_s:
                return True
            if record.tombstone and record.live and not self._tombstones.stale(record):
                return True
        return False

    def _claim_on(self, host: str, tracker: Tracker, *, replacing: str | None) -> lifecycle.ClaimResult:
        request = tracker.request
        engine = self._fleet[host]
        share = (request.resources.memory_bytes, request.resources.cpus)
        with self._trackers.lock:
            used = self._pending.get(host, (0, 0.0))
            self._pending[host] = (used[0] + share[0], used[1] + share[1])
        try:
            with self._host_locks[host]:
                result = lifecycle.claim(engine, self._config.host(host), request, self._settings,
                                         observer=self._observer, created=_now(), rng=self._rng)
            if result.outcome is not Outcome.PLACED or result.record is None:
                return result
            record = result.record
            others, _ = self._observer.find(request.workspace, hosts=[h for h in self._fleet.names if h != host])
            rivals = [p for p in others if p.id != replacing and p.live and not self._tombstones.stale(p)]
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
            with self._trackers.lock:
                used = self._pending.get(host, (0, 0.0))
                self._pending[host] = (used[0] - share[0], used[1] - share[1])

    def _started(self, tracker: Tracker, generation: int, record: PreviewRecord) -> bool:
        with self._trackers.lock:
            stale = not self._trackers.current(tracker, generation)
            if not stale:
                tracker.host, tracker.container_id = record.host, record.id
                tracker.public_port, tracker.created = record.public_port, record.created
                self._trackers.set_phase(tracker, generation, Phase.STARTING)
                self._trackers.leave_line(tracker)
        if stale:  # stopped while it was being placed
            with contextlib.suppress(RuntimeFailure, APIError):
                lifecycle.discard(self._fleet[record.host], record)
            return True
        self._follow(tracker, generation)
        return True

    def _follow(self, tracker: Tracker, generation: int) -> None:
        """Follow a started preview to ready (HTTP answers) or failed; re-place it if its host dies first."""
        with self._trackers.lock:
            host, container_id, port = tracker.host, tracker.container_id, tracker.public_port
        if host is None or container_id is None:
            return
        framework = self._settings.frameworks[tracker.request.framework]
        address = str(self._config.host(host).private_address)
        engine = self._fleet[host]
        deadline = time.monotonic() + framework.ready_timeout_s
        delay = 0.1
        down_since: float | None = None
        while not self._closed.is_set() and self._trackers.current(tracker, generation):
            if port is not None and http_answers(address, port, framework.ready_path, timeout=2.0):
                self._trackers.set_phase(tracker, generation, Phase.READY)
                return
            try:
                inspected = engine.call(lambda api: api.inspect_container(container_id), "inspect")
                state = inspected.get("State") or {}
                if port is None:
                    port = lifecycle.published_port(inspected, int(framework.port))
                    with self._trackers.lock:
                        tracker.public_port = port
                if state.get("Status") in ("exited", "dead"):
                    _, why = read_phase(engine, container_id)  # the template's own reason, when it gave one
                    self._trackers.fail(tracker, generation, why or f"the dev server exited (code "
                                        f"{state.get('ExitCode')}): {self._log_tail(host, container_id)}")
                    return
                phase, why = read_phase(engine, container_id)
                down_since = None
            except NotFound:
                self._trackers.fail(tracker, generation, "the container was removed while starting")
                return
            except (HostUnavailable, EngineError) as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= HOST_DEAD_S:
                    self._replace_lost(tracker, generation, host, str(exc))
                    return
                phase, why = None, None
            if phase is Phase.FAILED:
                self._trackers.fail(tracker, generation, why or "the dev server failed")
                return
            if phase is not None:
                self._trackers.set_phase(tracker, generation, phase)
            if time.monotonic() > deadline:
                self._trackers.fail(tracker, generation, f"not ready within {framework.ready_timeout_s:.0f} s")
                return
            self._closed.wait(delay)
            delay = min(delay * 1.5, 1.5)

    def _replace_lost(self, tracker: Tracker, generation: int, host: str, why: str) -> None:
        """The host died before the preview was ready: place it again elsewhere (the request is not lost)."""
        with self._trackers.lock:
            if not self._trackers.current(tracker, generation):
                return
            tracker.generation += 1
            tracker.host = tracker.container_id = None
            tracker.public_port = None
            tracker.error = f"host {host} stopped answering ({why}); placing again"
            self._trackers.set_phase(tracker, tracker.generation, Phase.PLACING)
        self.place(tracker, exclude=frozenset({host}))

    def _log_tail(self, host: str, container_id: str) -> str:
        try:
            data = self._fleet[host].call(lambda api: api.logs(container_id, tail=5), "logs")
        except (RuntimeFailure, APIError):
            return "(no logs)"
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        return " | ".join(line.strip() for line in text.strip().splitlines()[-5:]) or "(no output)"

    def _pause(self, low: float, high: float) -> None:
        self._closed.wait(self._rng.uniform(low, high))
