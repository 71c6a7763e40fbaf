"""Every host's engine together: parallel calls across hosts under one deadline, each host in its own thread pool
with a cap on calls in flight (a black-holed host fills only its own), and the health checks (one at a time per
host, on their own threads; see ``engines`` for what decides a host's health)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.clients import Endpoint
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.engines import HOST_CALLS_LIMIT, HOST_WORKERS, RECHECK_S, Engine, HostState, StateChange
from drape_fleet.runtime.errors import CallFailed, HostDown, UnknownHost

T = TypeVar("T")

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
