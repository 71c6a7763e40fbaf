"""Following a started preview until its dev server answers: the phases its template reports, ready when HTTP
answers on the published port, failed when the container exits or the deadline passes. When the host's health
checks fail first (it is *down*, not merely slow to answer one call), the preview is handed back to be placed
elsewhere.

Where the time to ready goes: the dev server starts listening some tens of milliseconds after the container
starts. The HTTP probe is cheap (a refused connection costs nothing), so it runs every ``PROBE_FIRST_S`` at first
and backs off to ``PROBE_MAX_S``; the engine's view (inspect, phase file) is slower and is read every ``LOOK_S`` on
its own cadence, never between two probes. A template's supervisor also logs its phases: the probes follow that
instead (``phase_hint``), and the phase file, which costs the engine most, is read once the template says ready.
Every read is bounded (``untrusted``).

A follower writes to its tracker only while its generation is current (see ``tracking``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from docker.errors import APIError, NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime import lifecycle
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.readiness import Phase, is_ready, phase_hint, read_phase
from drape_fleet.runtime.tracking import Tracker, Trackers
from drape_fleet.runtime.untrusted import log_tail

PROBE_FIRST_S = 0.02
PROBE_MAX_S = 0.2
"""The longest wait between probes: on average half of it passes between a template saying ready and the runtime
seeing it. A probe is cheap: a template's log tail (``phase_hint``), or an HTTP request to the port."""
LOOK_S = 0.5
"""How often the engine is asked about a starting preview (state, phase file)."""

HostLost = Callable[[Tracker, int, str, str], None]
"""Called with (tracker, generation, host, why) when the host went down before the preview was ready."""


class Follower:
    def __init__(self, config: FleetConfig, fleet: Fleet, trackers: Trackers, *, closed: threading.Event,
                 clock: Clock) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._trackers = trackers
        self._closed = closed
        self._clock = clock

    def follow(self, tracker: Tracker, generation: int, on_host_lost: HostLost) -> None:
        """Poll until ready or failed, or until the worker is no longer in charge."""
        with self._trackers.lock:
            host, container_id, port = tracker.host, tracker.container_id, tracker.public_port
        if host is None or container_id is None:
            return
        framework = self._settings.frameworks[tracker.request.framework]
        address = str(self._config.host(host).private_address)
        engine = self._fleet[host]
        budget = self._settings.preview_read_timeout_s
        deadline = self._clock.monotonic() + framework.ready_timeout_s
        delay = PROBE_FIRST_S
        hinted = framework.ready_when == "page-compiled"
        # The first look at the engine waits its turn too: right after the start, the probes find the dev server
        # within tens of milliseconds, and an inspect and a phase-file read between them would only delay that.
        looked_at: float | None = time.monotonic() if port is not None else None
        phase: Phase | None = None
        while not self._closed.is_set() and self._trackers.current(tracker, generation):
            # A template's supervisor logs each phase: the probes watch that (cheap) and read the phase file (not
            # cheap: ``phase_hint``) once it says ready. Without a hint yet (the clone, or a template that does
            # not log) the phase file is read at each look, as for any preview.
            hint = self._hint(engine, container_id, budget) if hinted and port is not None else None
            if hint is Phase.FAILED:
                hint = None  # the phase file has the whole reason: read at this turn's look
                looked_at = None
            elif hint is not None and hint is not Phase.READY:
                phase = hint
                self._trackers.set_phase(tracker, generation, hint)
            if (port is not None and (hint is Phase.READY or (hint is None and phase is not Phase.INSTALLING))
                    and is_ready(engine, container_id, address, port, framework, budget=budget)):
                self._trackers.set_phase(tracker, generation, Phase.READY)
                return
            now = time.monotonic()  # pacing of real I/O (the deadline below reads the runtime's clock)
            if looked_at is None or now - looked_at >= LOOK_S or port is None:
                looked_at = now
                if not engine.available():
                    on_host_lost(tracker, generation, host, engine.health.last_error or "health checks failed")
                    return
                try:
                    inspected = engine.call(lambda api: api.inspect_container(container_id), "inspect")
                    if port is None:  # a preview on its own network: its own published port
                        port = lifecycle.published_port(inspected, int(framework.port))
                        self._trackers.published(tracker, generation, port)
                    state = inspected.get("State") or {}
                    if state.get("Status") in ("exited", "dead"):
                        phase, why = read_phase(engine, container_id, budget=budget)
                        self._trackers.fail(tracker, generation, why or f"the dev server exited (code "
                                            f"{state.get('ExitCode')}): {self._log_tail(host, container_id)}")
                        return
                    if hint is None:
                        phase, why = read_phase(engine, container_id, budget=budget)
                except NotFound:
                    self._trackers.fail(tracker, generation, "the container was removed while starting")
                    return
                except RuntimeFailure:  # a slow answer is not a dead host: the health checks decide that
                    phase, why = None, None
                if phase is Phase.FAILED:
                    self._trackers.fail(tracker, generation, why or "the dev server failed")
                    return
                if phase is not None and phase is not Phase.READY:  # ready: is_ready, with the port answering
                    self._trackers.set_phase(tracker, generation, phase)
            if self._clock.monotonic() > deadline:
                self._trackers.fail(tracker, generation, f"not ready within {framework.ready_timeout_s:.0f} s")
                return
            self._closed.wait(delay)
            delay = min(delay * 1.3, PROBE_MAX_S)

    def _hint(self, engine: Engine, container_id: str, budget: float) -> Phase | None:
        try:
            return phase_hint(engine, container_id, budget=budget)
        except (RuntimeFailure, APIError):  # unknown: the phase file decides, as without a hint
            return None

    def _log_tail(self, host: str, container_id: str) -> str:
        try:
            return log_tail(self._fleet[host], container_id, budget=self._settings.preview_read_timeout_s)
        except (RuntimeFailure, APIError):
            return "(no logs)"
