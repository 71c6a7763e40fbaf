"""Drains started through the API: a drain takes minutes (it waits for previews to go idle, then moves the
rest), so ``POST /v1/hosts/{host}/drain`` starts it on a thread of this instance and answers 202; ``GET`` shows
its progress. Starting a drain that runs already answers the running one (the call is idempotent).

The cordon a drain sets lives in the host's engine, so every instance stops placing there at once; the drain's
progress is this instance's (ask the instance that started it, or look at ``GET /v1/hosts``).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

from drape_fleet.runtime.maintenance import DrainReport
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.schemas import Drain

PROGRESS_LINES = 50


@dataclass
class _Run:
    thread: threading.Thread | None = None
    report: DrainReport | None = None
    error: str | None = None
    progress: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=PROGRESS_LINES))


class Drains:
    def __init__(self, runtime: PreviewRuntime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}

    def start(self, host: str, *, idle_s: float, deadline_s: float) -> Drain:
        self._runtime.fleet[host]  # an unknown host raises UnknownHost (404) here, not on the thread
        with self._lock:
            run = self._runs.get(host)
            if run is not None and run.thread is not None and run.thread.is_alive():
                return self._view(host, run)
            run = self._runs[host] = _Run()
            run.thread = threading.Thread(target=self._drain, args=(host, run, idle_s, deadline_s),
                                          name=f"drape-drain-{host}", daemon=True)
            run.thread.start()
            return self._view(host, run)

    def state(self, host: str) -> Drain | None:
        with self._lock:
            run = self._runs.get(host)
            return None if run is None else self._view(host, run)

    def _drain(self, host: str, run: _Run, idle_s: float, deadline_s: float) -> None:
        try:
            report = self._runtime.drain(host, idle_s=idle_s, deadline_s=deadline_s, progress=run.progress.append)
            with self._lock:
                run.report = report
        except Exception as exc:  # reported through GET, never lost on the thread
            with self._lock:
                run.error = str(exc)

    @staticmethod
    def _view(host: str, run: _Run) -> Drain:
        running = run.thread is not None and run.thread.is_alive()
        return Drain.from_report(host, run.report, running=running, error=run.error, progress=list(run.progress))
