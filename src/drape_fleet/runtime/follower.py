"""Following a started preview until its dev server answers: the phases its template reports, ready when HTTP
answers on the published port, failed when the container exits or the deadline passes. When the host stops
answering for ``HOST_DEAD_S`` first, the follower hands the preview back to be placed elsewhere.

A follower writes to its tracker only while its generation is current (see ``tracking``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from docker.errors import APIError, NotFound

from drape_fleet.config.models import FleetConfig
from drape_fleet.runtime import lifecycle
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Fleet
from drape_fleet.runtime.errors import EngineError, HostUnavailable, RuntimeFailure
from drape_fleet.runtime.readiness import Phase, http_answers, read_phase
from drape_fleet.runtime.tracking import Tracker, Trackers

HOST_DEAD_S = 6.0
"""A starting preview whose host has not answered for this long is placed again elsewhere."""

HostLost = Callable[[Tracker, int, str, str], None]
"""Called with (tracker, generation, host, why) when the host died before the preview was ready."""


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
        """Poll until ready or failed (backing off from 0.1 to 1.5 s), or until the worker is no longer in charge."""
        with self._trackers.lock:
            host, container_id, port = tracker.host, tracker.container_id, tracker.public_port
        if host is None or container_id is None:
            return
        framework = self._settings.frameworks[tracker.request.framework]
        address = str(self._config.host(host).private_address)
        engine = self._fleet[host]
        deadline = self._clock.monotonic() + framework.ready_timeout_s
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
                    self._trackers.published(tracker, generation, port)
                phase, why = read_phase(engine, container_id)
                if state.get("Status") in ("exited", "dead"):
                    self._trackers.fail(tracker, generation, why or f"the dev server exited (code "
                                        f"{state.get('ExitCode')}): {self._log_tail(host, container_id)}")
                    return
                down_since = None
            except NotFound:
                self._trackers.fail(tracker, generation, "the container was removed while starting")
                return
            except (HostUnavailable, EngineError) as exc:
                down_since = down_since or self._clock.monotonic()
                if self._clock.monotonic() - down_since >= HOST_DEAD_S:
                    on_host_lost(tracker, generation, host, str(exc))
                    return
                phase, why = None, None
            if phase is Phase.FAILED:
                self._trackers.fail(tracker, generation, why or "the dev server failed")
                return
            if phase is not None:
                self._trackers.set_phase(tracker, generation, phase)
            if self._clock.monotonic() > deadline:
                self._trackers.fail(tracker, generation, f"not ready within {framework.ready_timeout_s:.0f} s")
                return
            self._closed.wait(delay)
            delay = min(delay * 1.5, 1.5)

    def _log_tail(self, host: str, container_id: str) -> str:
        try:
            data = self._fleet[host].call(lambda api: api.logs(container_id, tail=5), "logs")
        except (RuntimeFailure, APIError):
            return "(no logs)"
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        return " | ".join(line.strip() for line in text.strip().splitlines()[-5:]) or "(no output)"
