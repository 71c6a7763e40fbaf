"""What the routes share: the runtime, the fleet's service settings, this instance's name, the metrics, the
phase board, the drains, and the readiness check. Built once per process (``app.create_app``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool

from drape_fleet.config.service import ServiceSettings
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.service.drains import Drains
from drape_fleet.service.errors import ApiError, from_runtime
from drape_fleet.service.metrics import ServiceMetrics
from drape_fleet.service.phases import PhaseBoard
from drape_fleet.service.schemas import Readiness

READY_CACHE_S = 2.0
"""/readyz is probed often (the ingress, monitoring); one engine ping per host at most this often."""


@dataclass
class ServiceContext:
    runtime: PreviewRuntime
    settings: ServiceSettings
    instance: str
    metrics: ServiceMetrics
    board: PhaseBoard
    drains: Drains = field(init=False)
    _ready: tuple[float, Readiness] | None = field(default=None, init=False)
    _ready_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.drains = Drains(self.runtime)

    def api_error(self, exc: RuntimeFailure) -> ApiError:
        return from_runtime(exc, frameworks=self.runtime.settings.frameworks, hosts=self.runtime.fleet.names)

    async def status(self, workspace: str) -> PreviewStatus | None:
        return await run_in_threadpool(self.runtime.status, workspace)

    def readiness(self) -> Readiness:
        """Config loaded (it is, or this process would not run) and engines answering: ready when at least one
        host's engine answers (the others' previews are placed elsewhere meanwhile)."""
        with self._ready_lock:
            if self._ready is not None and time.monotonic() - self._ready[0] < READY_CACHE_S:
                return self._ready[1]
            timeout = self.runtime.settings.snapshot_timeout_s
            answers = self.runtime.fleet.each(lambda engine: engine.call(lambda api: api.ping(), "ping"),
                                              timeout=timeout)
            engines = {name: not isinstance(answer, BaseException) for name, answer in answers.items()}
            errors = {name: str(answer) for name, answer in answers.items() if isinstance(answer, BaseException)}
            state = Readiness(status="ready" if any(engines.values()) else "not ready", instance=self.instance,
                              engines=engines, errors=errors)
            self._ready = (time.monotonic(), state)
            return state
