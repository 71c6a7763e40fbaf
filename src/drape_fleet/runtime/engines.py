"""The one seam to the hosts' Docker engines: calls, their time budgets, each host's health, error mapping. (The
clients themselves: ``clients``; every host together: ``fleet``.)

How a host's health is decided (the rules a slow host, a dead host and a black-holed host all follow):

* Only failed **health checks** count against a host. A call that gets no answer (timed out, refused, reset)
  raises ``CallFailed`` for that call alone and asks for a health check; two failed checks in a row make the host
  ``down``. A slow removal on a healthy host is a slow call, never a dead host.
* A ``down`` host's calls are refused at once (``HostDown``), so no caller waits for it; it is checked again
  after a backoff (exponential, with jitter), by one checker at a time: nobody retries "the moment backoff ends",
  so there is no thundering herd. The first successful check brings it back (listeners are told: the watch
  re-lists it, the queue looks again, remembered stops are applied).
* Each host has its own thread pool and cap on calls in flight (``Fleet.each``), and its own connections: a
  black-holed host fills only its own pool, calls to healthy hosts never queue behind it.
* Calls have budgets by kind: ordinary calls ``request_timeout_s``, slow ones (removing a preview, loading an
  image: ``slow=True``) ``slow_call_timeout_s``, health checks ``probe_timeout_s``, reads from a preview the
  total deadline their caller gives (``untrusted``).
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from docker.errors import APIError, DockerException

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clients import (
    ApiClient,
    Connect,
    Endpoint,
    TlsFiles,
    docker_client,
    read_limited,
    stat_header,
    tls_endpoints,
)
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.errors import CallFailed, EngineError, HostDown

__all__ = ["ApiClient", "Endpoint", "Engine", "Health", "HostState", "TlsFiles", "read_limited", "stat_header",
           "tls_endpoints"]
"""``Endpoint``, ``TlsFiles`` and ``tls_endpoints`` stay importable from here (the lab and the image builder do)."""

T = TypeVar("T")

POOL_SIZE = 32
"""Connections kept per host: many backend threads talk to the same engine at once (docker-py's default is 10)."""
HOST_WORKERS = 16
"""Threads per host for parallel work across hosts (``Fleet.each``)."""
HOST_CALLS_LIMIT = 64
"""Parallel calls queued or running per host; beyond this a host's calls fail at once instead of piling up."""
DOWN_AFTER = 2
"""Failed health checks in a row that make a host ``down``."""
HEALTH_PING_S = 5.0
"""A host nothing has heard from for this long is checked (a cut network drops packets and refuses nothing)."""
RECHECK_S = 0.2
"""Pause between the health checks of a host that failed one (two decide, so a host is down within seconds)."""


# ---------------------------------------------------------------------------------------------------
# One host's engine and its health
# ---------------------------------------------------------------------------------------------------

class HostState(enum.StrEnum):
    UP = "up"
    SUSPECT = "suspect"
    """A call got no answer: a health check decides (calls still go through meanwhile)."""
    DOWN = "down"
    """Health checks failed: calls are refused at once until one succeeds."""


@dataclass
class Health:
    state: HostState = HostState.UP
    failures: int = 0
    """Failed health checks in a row."""
    last_error: str | None = None
    retry_at: float = 0.0
    """When a down host is checked next (monotonic)."""
    heard_at: float = 0.0
    """When the host last answered anything (monotonic)."""

    @property
    def healthy(self) -> bool:
        return self.state is not HostState.DOWN


_NO_ANSWER: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
    DockerException,
)
"""What a call that got no answer raises (refused, reset, timed out, TLS); ``APIError`` is an answer."""

StateChange = Callable[["Engine", HostState, HostState], None]


class Engine:
    """One host's engine: lazily built clients (one per kind of budget) and the host's health."""

    def __init__(self, endpoint: Endpoint, settings: RuntimeSettings, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, connect: Connect | None = None) -> None:
        self.endpoint = endpoint
        self.name = endpoint.host
        self._settings = settings
        self._clock = clock
        self._connect = connect
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._lock = threading.Lock()
        self._clients: dict[str, ApiClient] = {}
        self.health = Health(heard_at=clock.monotonic())
        self.facts: dict[str, Any] = {}
        self.on_change: StateChange | None = None
        """Told of every change of state (set by the ``Fleet``)."""
        self.wants_check: Callable[[Engine], None] | None = None
        """Asked for a health check when a call got no answer, or a down host is due (set by the ``Fleet``)."""

    # -- clients ----------------------------------------------------------------------------------

    def _client(self, kind: str, timeout: float) -> ApiClient:
        with self._lock:
            api = self._clients.get(kind)
            if api is None:
                api = self._clients[kind] = self._make(timeout, POOL_SIZE if kind == "call" else 4)
            return api

    def _make(self, timeout: float, pool_size: int) -> ApiClient:
        if self._connect is not None:
            return self._connect(self.endpoint, timeout, pool_size)
        return docker_client(self.endpoint, timeout, pool_size, api_version=self._settings.api_version)

    @property
    def api(self) -> ApiClient:
        return self._client("call", self._settings.request_timeout_s)

    # -- health -----------------------------------------------------------------------------------

    @property
    def state(self) -> HostState:
        with self._lock:
            return self.health.state

    def available(self) -> bool:
        """Calls go through (up, or suspect while a health check decides); False when down."""
        return self.state is not HostState.DOWN

    def due_for_check(self) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            health = self.health
            if health.state is HostState.DOWN:
                return now >= health.retry_at
            return health.state is HostState.SUSPECT or now - health.heard_at >= HEALTH_PING_S

    def _set(self, state: HostState, *, error: str | None = None) -> None:
        with self._lock:
            old = self.health.state
            self.health.state = state
            if error is not None:
                self.health.last_error = error
            if state is HostState.UP:
                self.health.failures = 0
                self.health.last_error = None
        if old is not state and self.on_change is not None:
            self.on_change(self, old, state)

    def _answered(self) -> None:
        with self._lock:
            self.health.heard_at = self._clock.monotonic()
            changed = self.health.state is HostState.SUSPECT
        if changed:  # an answer is as good as a health check
            self._set(HostState.UP)

    def _unanswered(self, reason: str) -> None:
        if self.state is HostState.UP:
            self._set(HostState.SUSPECT, error=reason)
        if self.wants_check is not None:
            self.wants_check(self)

    def check(self) -> bool:
        """One health check (``GET /_ping`` within ``probe_timeout_s``); learns the engine's storage facts on the
        first success. Returns whether the host answered."""
        api = self._client("probe", self._settings.probe_timeout_s)
        try:
            api.ping()
            if not self.facts:
                self.facts = _facts(api.info())
        except Exception as exc:  # any failure of a health check is the answer
            self._check_failed(f"health check: {_short(exc)}")
            return False
        with self._lock:
            self.health.heard_at = self._clock.monotonic()
        self._set(HostState.UP)
        return True

    def _check_failed(self, reason: str) -> None:
        with self._lock:
            self.health.failures += 1
            failures = self.health.failures
            if failures >= DOWN_AFTER:
                delay = min(self._settings.backoff_max_s,
                            self._settings.backoff_initial_s * 2 ** min(failures - DOWN_AFTER, 16))
                self.health.retry_at = self._clock.monotonic() + delay * (0.5 + self._rng.random())
        self._set(HostState.DOWN if failures >= DOWN_AFTER else HostState.SUSPECT, error=reason)

    # -- calls ------------------------------------------------------------------------------------

    def call(self, fn: Callable[[ApiClient], T], what: str, *, slow: bool = False, timeout: float | None = None) -> T:
        """Run ``fn`` against this engine. A down host raises ``HostDown`` at once; a call that gets no answer
        raises ``CallFailed`` (and asks for a health check; it marks nothing itself). 4xx answers are re-raised as
        docker-py's ``APIError`` subclasses (``NotFound``, ...) for the caller to interpret; 5xx answers raise
        ``EngineError``. ``slow``: the slow-call budget (ended early when the host goes down); ``timeout``: a client
        of its own (bulk work)."""
        if not self.available():
            if self.due_for_check() and self.wants_check is not None:
                self.wants_check(self)
            with self._lock:
                wait = max(0.0, self.health.retry_at - self._clock.monotonic())
                reason = f"{self.health.last_error} (next health check in {wait:.1f} s)"
            raise HostDown(self.name, reason)
        if timeout is not None:
            api = self._make(timeout, 2)
        elif slow:
            api = self._client("slow", self._settings.slow_call_timeout_s)
        else:
            api = self.api
        try:
            result = self._until_down(fn, api, what) if slow else fn(api)
        except APIError as exc:
            self._answered()
            status = exc.status_code or 0
            if status >= 500:
                raise EngineError(self.name, status, f"{what}: {_short(exc.explanation or exc)}") from exc
            raise
        except _NO_ANSWER as exc:
            self._unanswered(f"{what}: {_short(exc)}")
            raise CallFailed(self.name, what, _short(exc)) from exc
        finally:
            if timeout is not None:
                api.close()
        self._answered()
        return result

    def _until_down(self, fn: Callable[[ApiClient], T], api: ApiClient, what: str) -> T:
        """A slow call, waited for as long as its budget allows but no longer than the host is up: a host found down
        by its health checks (a black hole, a cut) ends the wait at once, while the call itself runs to its own end on
        its thread (the engine may still finish it: a removal, a start)."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn(api))
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)

        threading.Thread(target=run, name=f"drape-slow-{self.name}", daemon=True).start()
        while True:
            try:
                return future.result(timeout=0.25)
            except FutureTimeout:
                if self.state is HostState.DOWN:
                    raise HostDown(self.name, f"{what}: abandoned, the host's health checks failed "
                                              f"({self.health.last_error})") from None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for api in clients:
            api.close()


def _facts(info: Mapping[str, Any]) -> dict[str, Any]:
    status = {str(k): str(v) for k, v in info.get("DriverStatus") or []}
    backing = status.get("Backing Filesystem", "")
    return {
        "server_version": info.get("ServerVersion"),
        "storage_driver": info.get("Driver"),
        "backing_filesystem": backing,
        # The writable layer's size can be limited only on overlay2 over XFS mounted with pquota; the
        # engine does not report the mount option, so XFS is taken as "try it" and a refusal turns it off.
        "disk_limit": info.get("Driver") == "overlay2" and backing == "xfs",
        "cpus": info.get("NCPU"),
        "memory": info.get("MemTotal"),
    }


def _short(exc: object) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
