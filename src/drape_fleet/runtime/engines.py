"""The one seam to the hosts' Docker engines: a client per host, time budgets, health, error mapping.

Production reaches each host's engine over mutual TLS on ``tcp://<private_address>:<docker_api_port>``
(the provisioning work makes the engines listen there and issues the backend a client certificate). A plain
``tcp://`` endpoint is refused outright; ``unix://`` sockets exist for a local engine (and lab tooling).

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

Clients are built with an explicit API ``version`` so that constructing one never calls the daemon (a dead host
must not fail or block at construction), and with ``trust_env=False``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import docker
import requests
import requests.adapters
from docker.errors import APIError, DockerException
from docker.tls import TLSConfig
from docker.types.daemon import CancellableStream
from docker.utils import convert_filters

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.errors import CallFailed, EngineError, HostDown, UnknownHost

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


@dataclass(frozen=True)
class TlsFiles:
    """The backend's client credentials for the engines' mutual TLS."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_pki_dir(cls, pki_dir: Path) -> TlsFiles:
        """The provisioning work's layout (``drape_fleet.pki.paths``): ``ca.pem``, ``clients/backend/*.pem``."""
        from drape_fleet.pki.paths import client_tls_files

        ca, cert, key = client_tls_files(pki_dir)
        return cls(ca=ca, cert=cert, key=key)

    def missing(self) -> list[Path]:
        return [p for p in (self.ca, self.cert, self.key) if not p.is_file()]


@dataclass(frozen=True)
class Endpoint:
    host: str
    base_url: str
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if self.base_url.startswith(("tcp://", "https://", "http://")) and self.tls is None:
            raise ValueError(f"{self.host}: refusing a plaintext TCP connection to {self.base_url}; "
                             "the engines' API is reached only with mutual TLS")
        if not self.base_url.startswith(("tcp://", "https://", "unix://")):
            raise ValueError(f"{self.host}: unsupported engine address {self.base_url!r}")


def tls_endpoints(fleet: FleetConfig, tls: TlsFiles) -> list[Endpoint]:
    """Production endpoints: every host's private address on the fleet's Docker API port, mutual TLS."""
    missing = tls.missing()
    if missing:
        raise FileNotFoundError("missing TLS files for the Docker API: " + ", ".join(map(str, missing))
                                + " (issued by the provisioning work; see drape_fleet.pki)")
    port = fleet.network.docker_api_port
    endpoints = []
    for host in fleet.hosts:
        address = host.private_address
        literal = f"[{address}]" if address.version == 6 else str(address)
        endpoints.append(Endpoint(host=host.name, base_url=f"tcp://{literal}:{port}", tls=tls))
    return endpoints


# ---------------------------------------------------------------------------------------------------
# The client: docker-py's, plus the two streaming reads the runtime needs bounded
# ---------------------------------------------------------------------------------------------------

class ApiClient(docker.APIClient):
    """docker-py's low-level client with two additions that its public methods do not offer: a streamed GET whose
    response the caller bounds and closes (``open_stream``), and the event stream with a connect timeout (docker-py's
    ``events()`` has none at all, so connecting to a black-holed host would hang)."""

    @contextlib.contextmanager
    def open_stream(self, path: str, *args: str, params: Mapping[str, Any],
                    timeout: float) -> Iterator[requests.Response]:
        this: Any = self  # docker-py's request helpers are not in its type stubs
        # identity: the engine gzips archives for clients that accept it, and a byte cap on a compressed stream
        # would bound nothing (a sparse file compresses to almost nothing)
        response = this._get(this._url(path, *args), params=dict(params), stream=True, timeout=timeout,
                             headers={"Accept-Encoding": "identity"})
        try:
            this._raise_for_status(response)
            yield response
        finally:
            response.close()

    def event_stream(self, filters: Mapping[str, list[str]], *, connect_timeout: float) -> CancellableStream[Any]:
        this: Any = self
        response = this._get(this._url("/events"), params={"filters": convert_filters(dict(filters))}, stream=True,
                             timeout=(connect_timeout, None))
        this._raise_for_status(response)
        return CancellableStream(this._stream_helper(response, decode=True), response)


def read_limited(response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    """At most ``max_bytes`` of a streamed body, stopping at ``deadline`` (monotonic) with what has arrived."""
    chunks: list[bytes] = []
    total = 0
    while total < max_bytes and time.monotonic() < deadline:
        chunk = response.raw.read(min(16384, max_bytes - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def stat_header(response: requests.Response) -> dict[str, Any]:
    """The engine's ``X-Docker-Container-Path-Stat`` header of an archive answer (name, size, mode, mtime)."""
    header = response.headers.get("X-Docker-Container-Path-Stat")
    if not header:
        return {}
    try:
        stat = json.loads(base64.b64decode(header))
    except (ValueError, binascii.Error):
        return {}
    return stat if isinstance(stat, dict) else {}


Connect = Callable[["Endpoint", float, int], ApiClient]
"""Makes the API client for an endpoint, with a request timeout and a pool size."""


def docker_client(endpoint: Endpoint, timeout: float, pool_size: int, *, api_version: str) -> ApiClient:
    tls: TLSConfig | bool = False
    if endpoint.tls is not None:
        files = endpoint.tls
        tls = TLSConfig(client_cert=(str(files.cert), str(files.key)), ca_cert=str(files.ca), verify=True)
    api = ApiClient(base_url=endpoint.base_url, version=api_version, timeout=cast(Any, timeout), tls=tls,
                    max_pool_size=pool_size)  # a float is fine: requests takes it (the stubs say int)
    # requests lets the environment override the session: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would replace
    # our CA with the system bundle (every TLS handshake then fails) and HTTPS_PROXY would send engine
    # traffic through a proxy. The engines are reached directly, with our CA only.
    api.trust_env = False
    if endpoint.tls is not None:
        # docker-py ignores max_pool_size over TLS (its adapter keeps requests' 10): past ten threads every call
        # paid a new TLS handshake. The session keeps the certificates; this adapter only keeps the connections.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        cast(Any, api)._custom_adapter = adapter
        api.mount("https://", adapter)
    return api


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


# ---------------------------------------------------------------------------------------------------
# The fleet: every host's engine, its own pool, and the health checks
# ---------------------------------------------------------------------------------------------------

class _HostPool:
    """One host's threads for parallel work, with a cap on what may wait for them."""

    def __init__(self, name: str, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"drape-{name}")
        self._slots = threading.BoundedSemaphore(HOST_CALLS_LIMIT)

    def submit(self, fn: Callable[[], T]) -> Future[T] | None:
        if not self._slots.acquire(blocking=False):
            return None
        future = self._executor.submit(fn)
        future.add_done_callback(lambda _f: self._slots.release())
        return future

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Fleet:
    """The engines of every host: parallel calls under one deadline, each host in its own pool, and the health
    checks (one at a time per host, on their own threads)."""

    def __init__(self, engines: Iterable[Engine], *, workers_per_host: int = HOST_WORKERS) -> None:
        self._engines = {e.name: e for e in engines}
        self._pools = {name: _HostPool(name, workers_per_host) for name in self._engines}
        self._checks = ThreadPoolExecutor(max_workers=max(2, len(self._engines)), thread_name_prefix="drape-check")
        self._lock = threading.Lock()
        self._checking: set[str] = set()
        self._listeners: list[StateChange] = []
        self._closed = threading.Event()
        for engine in self._engines.values():
            engine.on_change = self._changed
            engine.wants_check = self.request_check

    @classmethod
    def from_endpoints(cls, endpoints: Iterable[Endpoint], settings: RuntimeSettings, *,
                       clock: Clock = SYSTEM_CLOCK) -> Fleet:
        return cls(Engine(e, settings, clock=clock) for e in endpoints)

    def __getitem__(self, host: str) -> Engine:
        try:
            return self._engines[host]
        except KeyError:
            raise UnknownHost(f"unknown host {host!r}: this fleet has {', '.join(self._engines)}") from None

    @property
    def names(self) -> list[str]:
        return list(self._engines)

    def engines(self) -> list[Engine]:
        return list(self._engines.values())

    # -- health -----------------------------------------------------------------------------------

    def on_change(self, listener: StateChange) -> None:
        """``listener(engine, old, new)`` on every change of a host's state (called on the checking thread)."""
        self._listeners.append(listener)

    def _changed(self, engine: Engine, old: HostState, new: HostState) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):
                listener(engine, old, new)

    def request_check(self, engine: Engine) -> None:
        """Check ``engine``'s health on the checking threads, unless a check of it is already running."""
        with self._lock:
            if engine.name in self._checking or self._closed.is_set():
                return
            self._checking.add(engine.name)
        try:
            self._checks.submit(self._check_until_decided, engine)
        except RuntimeError:  # shut down
            with self._lock:
                self._checking.discard(engine.name)

    def _check_until_decided(self, engine: Engine) -> None:
        try:
            while not self._closed.is_set() and not engine.check() and engine.state is HostState.SUSPECT:
                self._closed.wait(RECHECK_S)
        finally:
            with self._lock:
                self._checking.discard(engine.name)

    def check_due(self) -> None:
        """Ask for a check of every host that is due one (the background health loop calls this)."""
        for engine in self._engines.values():
            if engine.due_for_check():
                self.request_check(engine)

    # -- calls across hosts -----------------------------------------------------------------------

    def each(self, fn: Callable[[Engine], T], *, hosts: Iterable[str] | None = None,
             timeout: float) -> dict[str, T | BaseException]:
        """``fn(engine)`` on each host in parallel, on each host's own threads; every result within ``timeout``
        seconds (real time). A down host gets ``HostDown`` without being called; a host that does not answer in
        time, or has too many calls in flight, gets ``CallFailed`` (its call finishes in the background)."""
        names = list(hosts) if hosts is not None else self.names
        results: dict[str, T | BaseException] = {}
        futures: dict[str, Future[T]] = {}
        for name in names:
            engine = self[name]
            if not engine.available():
                if engine.due_for_check():
                    self.request_check(engine)
                results[name] = HostDown(name, engine.health.last_error or "health checks failed")
                continue
            future = self._pools[name].submit(lambda e=engine: fn(e))  # type: ignore[misc]
            if future is None:
                results[name] = CallFailed(name, "parallel call", f"{HOST_CALLS_LIMIT} calls already in flight")
            else:
                futures[name] = future
        deadline = time.monotonic() + timeout
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = CallFailed(name, "parallel call", f"no answer within {timeout:.1f} s")
            except Exception as exc:  # each host's failure is reported, not raised
                results[name] = exc
        return {name: results[name] for name in names}

    def close(self) -> None:
        self._closed.set()
        self._checks.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            pool.close()
        for engine in self._engines.values():
            engine.close()
