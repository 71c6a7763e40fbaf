"""The one seam to the hosts' Docker engines: a client per host, timeouts, health, backoff, error mapping.

Production reaches each host's engine over mutual TLS on ``tcp://<private_address>:<docker_api_port>``
(the provisioning work makes the engines listen there and issues the backend a client certificate). A plain
``tcp://`` endpoint is refused outright; ``unix://`` sockets exist for a local engine (and lab tooling).

* Clients are built with an explicit API ``version`` so that constructing one never calls the daemon (a dead
  host must not fail or block at construction), with a per-request timeout and a connection pool sized for
  many threads.
* A transport failure (refused, timed out, TLS, reset) or a 5xx answer to a health-critical call marks the
  host unhealthy; calls then fail fast with ``HostUnavailable`` until the backoff delay has passed
  (exponential with jitter, capped); the next call (or the service's health probe) tries again.
* ``Fleet.each`` calls several hosts in parallel under one deadline, so one slow host never holds up a
  decision that other hosts can make.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException
from docker.tls import TLSConfig

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.errors import EngineError, HostUnavailable, UnknownHost

T = TypeVar("T")

POOL_SIZE = 32
"""Connections kept per host: many backend threads talk to the same engine at once (docker-py's default is 10)."""


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


@dataclass
class Health:
    healthy: bool = True
    failures: int = 0
    last_error: str | None = None
    retry_at: float = 0.0


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
)


Connect = Callable[[Endpoint, float, int], docker.APIClient]
"""Makes the API client for an endpoint, with a request timeout and a pool size."""


def docker_client(endpoint: Endpoint, timeout: float, pool_size: int, *, api_version: str) -> docker.APIClient:
    tls: TLSConfig | bool = False
    if endpoint.tls is not None:
        files = endpoint.tls
        tls = TLSConfig(client_cert=(str(files.cert), str(files.key)), ca_cert=str(files.ca), verify=True)
    api = docker.APIClient(base_url=endpoint.base_url, version=api_version, timeout=int(max(1, round(timeout))),
                           tls=tls, max_pool_size=pool_size)
    # requests lets the environment override the session: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would replace
    # our CA with the system bundle (every TLS handshake then fails) and HTTPS_PROXY would send engine
    # traffic through a proxy. The engines are reached directly, with our CA only.
    api.trust_env = False
    return api


class Engine:
    """One host's engine: a lazily built client and the host's health."""

    def __init__(self, endpoint: Endpoint, settings: RuntimeSettings, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, connect: Connect | None = None) -> None:
        self.endpoint = endpoint
        self.name = endpoint.host
        self._settings = settings
        self._clock = clock
        self._connect = connect
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._lock = threading.Lock()
        self._api: docker.APIClient | None = None
        self.health = Health()
        self.facts: dict[str, Any] = {}

    @property
    def api(self) -> docker.APIClient:
        with self._lock:
            if self._api is None:
                self._api = self._client(self._settings.request_timeout_s, POOL_SIZE)
            return self._api

    def _client(self, timeout: float, pool_size: int) -> docker.APIClient:
        if self._connect is not None:
            return self._connect(self.endpoint, timeout, pool_size)
        return docker_client(self.endpoint, timeout, pool_size, api_version=self._settings.api_version)

    # -- health -----------------------------------------------------------------------------------

    def available(self) -> bool:
        with self._lock:
            return self.health.healthy or self._clock.monotonic() >= self.health.retry_at

    def _failed(self, reason: str) -> None:
        with self._lock:
            self.health.failures += 1
            self.health.healthy = False
            self.health.last_error = reason
            delay = min(self._settings.backoff_max_s,
                        self._settings.backoff_initial_s * 2 ** min(self.health.failures - 1, 16))
            self.health.retry_at = self._clock.monotonic() + delay * (0.8 + 0.4 * self._rng.random())

    def _ok(self) -> None:
        with self._lock:
            self.health.healthy = True
            self.health.failures = 0
            self.health.last_error = None

    # -- calls ------------------------------------------------------------------------------------

    def call(self, fn: Callable[[docker.APIClient], T], what: str, *, critical: bool = False,
             timeout: float | None = None) -> T:
        """Run ``fn`` against this engine. Transport failures mark the host down and raise ``HostUnavailable``;
        4xx answers are re-raised as docker-py's ``APIError`` subclasses (``NotFound``, ...) for the caller to
        interpret; 5xx answers raise ``EngineError`` (and mark the host down when ``critical``)."""
        if not self.available():
            with self._lock:
                wait = max(0.0, self.health.retry_at - self._clock.monotonic())
                reason = f"{self.health.last_error} (next try in {wait:.1f} s)"
            raise HostUnavailable(self.name, reason)
        api = self.api if timeout is None else self._client(timeout, 2)  # bulk work (images): its own client
        try:
            result = fn(api)
        except APIError as exc:
            status = exc.status_code or 0
            if status >= 500:
                message = str(exc.explanation or exc)
                if critical:
                    self._failed(f"{what}: engine error {status}: {message}")
                raise EngineError(self.name, status, f"{what}: {message}") from exc
            self._ok()
            raise
        except _TRANSPORT_ERRORS as exc:
            self._failed(f"{what}: {_short(exc)}")
            raise HostUnavailable(self.name, f"{what}: {_short(exc)}") from exc
        except DockerException as exc:
            self._failed(f"{what}: {_short(exc)}")
            raise HostUnavailable(self.name, f"{what}: {_short(exc)}") from exc
        finally:
            if api is not self._api:
                api.close()
        self._ok()
        return result

    def probe(self) -> bool:
        """Ping the engine (a health probe); learn its storage facts on the first success."""
        try:
            self.call(lambda api: api.ping(), "ping", critical=True)
            if not self.facts:
                info = self.call(lambda api: api.info(), "info", critical=True)
                self.facts = _facts(info)
        except (HostUnavailable, EngineError):
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None


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


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


class Fleet:
    """The engines of every host, and parallel calls across them under one deadline."""

    def __init__(self, engines: Iterable[Engine], *, workers: int = 16) -> None:
        self._engines = {e.name: e for e in engines}
        self._pool = ThreadPoolExecutor(max_workers=max(workers, 2 * len(self._engines)),
                                        thread_name_prefix="drape-engine")

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

    def each(self, fn: Callable[[Engine], T], *, hosts: Iterable[str] | None = None,
             timeout: float) -> dict[str, T | BaseException]:
        """``fn(engine)`` on each host in parallel; hosts that do not answer within ``timeout`` get a
        ``HostUnavailable`` (their call finishes in the background and updates their health). The deadline is
        real time: it bounds how long this thread blocks on the others."""
        names = list(hosts) if hosts is not None else self.names
        futures = {name: self._pool.submit(fn, self[name]) for name in names}
        deadline = time.monotonic() + timeout
        results: dict[str, T | BaseException] = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = HostUnavailable(name, f"no answer within {timeout:.1f} s")
            except Exception as exc:  # each host's failure is reported, not raised
                results[name] = exc
        return results

    def submit(self, fn: Callable[[], T]) -> Any:
        return self._pool.submit(fn)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for engine in self._engines.values():
            engine.close()
