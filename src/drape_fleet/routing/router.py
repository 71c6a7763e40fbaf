"""What the backend asks: "where does user U's preview go?" - answered from the current phase's policy, which a
background thread keeps current (it reads the store every ``poll_s``: a change ops make reaches every process
within about that long, without a restart, and the same read brings hosts that were down back up to date).

From Python (the service exposes the same calls over HTTP)::

    router = Router.for_runtime(runtime, poll_s=2.0)     # shares the runtime's engines
    route = router.route("u-7", workspace="ws-42")
    if route.provider == "hetzner":
        started = time.monotonic()
        try:
            runtime.start("ws-42", "u-7", "nextjs", wait=600)
        except QueueFull as exc:                          # or the preview failed
            route = router.placement_failed("u-7", reason="queue full")   # recorded; provider "fly" in phase 3
        else:
            router.record_start("hetzner", "cold", time.monotonic() - started)
    ...                                                   # a Fly start: router.record_start("fly", "warm", 95.0)

Answers are in-memory lookups (no I/O) except one: a user whom the policy sends to Fly but whose workspace
still has a preview running on Hetzner (after a rollback, say) keeps it there until the reaper retires it, so
no rollback takes a running preview away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drape_fleet.config.models import FleetConfig
from drape_fleet.routing.metrics import MetricsStore, StartMetrics, StartRecorder
from drape_fleet.routing.policy import Provider, Route, RoutingPolicy, StartKind, check_user, decide
from drape_fleet.routing.store import StateStore, StoreView
from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.fleet import Fleet

if TYPE_CHECKING:
    from drape_fleet.runtime.service import PreviewRuntime

log = logging.getLogger("drape_fleet.routing")

RunningOn = Callable[[str], str | None]
"""The host a workspace's preview runs on (None: no live preview)."""


class Router:
    """Thread-safe. ``background=False`` leaves polling to the caller (``refresh``): tests and one-shot tools."""

    def __init__(self, fleet: Fleet, owner: str, *, poll_s: float = 2.0, flush_s: float = 10.0,
                 background: bool = True, running_on: RunningOn | None = None, clock: Clock = SYSTEM_CLOCK,
                 owns_fleet: bool = False, process: str | None = None) -> None:
        self.store = StateStore(fleet, owner, clock=clock)
        self.metrics_store = MetricsStore(fleet, owner, clock=clock)
        self.recorder = StartRecorder(process)
        self.poll_s = poll_s
        self.flush_s = flush_s
        self._fleet = fleet
        self._owns_fleet = owns_fleet
        self._running_on = running_on
        self._clock = clock
        self._lock = threading.Lock()
        self._policy = RoutingPolicy()
        self._generation = 0
        self._digest = ""
        self._last_read = float("-inf")
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self.refresh()
        if background:
            self._spawn(self._watch, "drape-routing-watch")
            self._spawn(self._flush_loop, "drape-routing-metrics")

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def connect(cls, config: FleetConfig, *, pki_dir: Path | None = None, poll_s: float | None = None,
                flush_s: float = 10.0, background: bool = True) -> Router:
        """A router with its own engine connections (mutual TLS, the backend's client certificate)."""
        from drape_fleet.pki.paths import pki_dir as default_pki_dir

        tls = TlsFiles.from_pki_dir(pki_dir or default_pki_dir(config.environment.name))
        fleet = Fleet.from_endpoints(tls_endpoints(config, tls), config.runtime)
        return cls(fleet, config.runtime.owner, poll_s=poll_s or _poll_s(config), flush_s=flush_s,
                   background=background, owns_fleet=True)

    @classmethod
    def for_runtime(cls, runtime: PreviewRuntime, *, poll_s: float | None = None, flush_s: float = 10.0,
                    background: bool = True) -> Router:
        """A router beside a runtime: the same engine connections, and a workspace with a live preview on
        Hetzner stays there."""
        def running_on(workspace: str) -> str | None:
            status = runtime.status(workspace)
            if status is None or not (status.ready or status.phase.active):
                return None
            return status.host

        return cls(runtime.fleet, runtime.settings.owner, poll_s=poll_s or _poll_s(runtime.config), flush_s=flush_s,
                   background=background, running_on=running_on)

    def close(self) -> None:
        """Stop the threads and flush this process's metrics one last time."""
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=2)
        try:
            self.recorder.flush(self.metrics_store)
        except Exception:  # shutting down: the hosts may be gone too
            log.warning("could not flush the start metrics at shutdown", exc_info=True)
        if self._owns_fleet:
            self._fleet.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the backend's questions ---------------------------------------------------------------------

    @property
    def policy(self) -> RoutingPolicy:
        with self._lock:
            return self._policy

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    @property
    def stale(self) -> bool:
        """No successful read for three polls (or more): answers come from the last policy seen."""
        with self._lock:
            return self._clock.monotonic() - self._last_read > max(3 * self.poll_s, 5.0)

    def route(self, user: str, workspace: str | None = None) -> Route:
        """Where ``user``'s preview (of ``workspace``) goes now."""
        check_user(user)
        with self._lock:
            policy, generation = self._policy, self._generation
        answer = decide(policy, user, generation=generation, stale=self.stale)
        if answer.provider == "fly" and workspace and self._running_on is not None:
            host = self._running_on(workspace)
            if host is not None:
                return answer.model_copy(update={"provider": "hetzner", "fallback": None,
                                                 "reason": f"its preview still runs on {host} (kept until it "
                                                           f"retires; the policy says: {answer.reason})"})
        return answer

    def placement_failed(self, user: str, *, reason: str, kind: StartKind = "cold",
                         workspace: str | None = None) -> Route:
        """A Hetzner placement for ``user`` failed: recorded (a Hetzner failure of ``kind``), and the answer is
        where to go now - Fly while the phase keeps it as a fallback, else Hetzner again (retry later)."""
        route = decide(self.policy, user, generation=self.generation, stale=self.stale)
        self.recorder.record(route.phase, "hetzner", kind, 0.0, ok=False, reason=reason)
        if route.phase <= 3 and self.policy.fly_fallback:
            self.recorder.fallback(route.phase)
            log.warning("Hetzner placement failed for user %s (workspace %s): %s; falling back to Fly", user,
                        workspace or "-", reason)
            return route.model_copy(update={"provider": "fly", "fallback": None,
                                            "reason": f"Hetzner placement failed ({reason}): fell back to Fly"})
        log.error("Hetzner placement failed for user %s (workspace %s): %s; no fallback in phase %s", user,
                  workspace or "-", reason, route.phase)
        return route.model_copy(update={"provider": "hetzner", "fallback": None,
                                        "reason": f"Hetzner placement failed ({reason}); phase {route.phase} has "
                                                  "no Fly fallback: retry"})

    def record_start(self, provider: Provider, kind: StartKind, seconds: float, *, ok: bool = True,
                     reason: str = "", phase: int | None = None) -> None:
        """A start measured by the caller (request to ready, or failed), under the phase it began in (default:
        the current one). Fly's starts come from the backend this way."""
        self.recorder.record(self.policy.phase if phase is None else phase, provider, kind, seconds, ok=ok,
                             reason=reason)

    def metrics(self) -> StartMetrics:
        """This process's metrics (the service exports them; the report reads every process's from the hosts)."""
        return self.recorder.snapshot()

    # -- keeping current -----------------------------------------------------------------------------

    def refresh(self) -> StoreView | None:
        """Read the store now: take a newer policy, bring hosts that are behind up to date."""
        try:
            view = self.store.read()
        except Exception:  # a read must never take the backend down
            log.warning("reading the routing policy failed", exc_info=True)
            return None
        newest = view.newest
        if view.answered:
            with self._lock:
                self._last_read = self._clock.monotonic()
        if newest is not None:
            with self._lock:
                changed = (newest.generation, newest.digest) != (self._generation, self._digest)
                if changed and newest.generation >= self._generation:
                    self._policy, self._generation, self._digest = newest.policy, newest.generation, newest.digest
            if changed:
                log.info("routing policy generation %s: %s", newest.generation, newest.policy.describe())
        if view.behind:
            repaired = self.store.repair(view)
            if repaired:
                log.info("brought the cutover state on %s up to generation %s", ", ".join(repaired), view.generation)
        return view

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _watch(self) -> None:
        while not self._closed.wait(self.poll_s):
            self.refresh()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.flush_s):
            try:
                self.recorder.flush(self.metrics_store)
            except Exception:
                log.warning("flushing the start metrics failed (kept for the next try)", exc_info=True)


def _poll_s(config: FleetConfig) -> float:
    return config.cutover.policy_poll_s if config.cutover is not None else 2.0
