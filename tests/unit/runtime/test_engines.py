from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from drape_fleet.config import FleetConfig
from drape_fleet.runtime import clock as runtime_clock
from drape_fleet.runtime.engines import Endpoint, Engine, HostState, TlsFiles, tls_endpoints
from drape_fleet.runtime.errors import CallFailed, EngineError, HostDown
from drape_fleet.runtime.fleet import Fleet


class Clock(runtime_clock.Clock):
    def __init__(self) -> None:
        self.seconds = 100.0

    def monotonic(self) -> float:
        return self.seconds


def engine(fleet: FleetConfig, clock: Clock) -> Engine:
    return Engine(Endpoint("ax1", "unix:///nonexistent.sock"), fleet.runtime, clock=clock)


def test_plaintext_tcp_is_refused() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        Endpoint("ax1", "tcp://10.0.0.11:2375")


def test_tls_endpoints_use_private_addresses_and_the_api_port(fleet: FleetConfig, tmp_path: Path) -> None:
    files = TlsFiles.from_pki_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ca\.pem"):
        tls_endpoints(fleet, files)
    for path in (files.ca, files.cert, files.key):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert [e.base_url for e in tls_endpoints(fleet, files)] == [
        "tcp://10.0.0.11:2376", "tcp://10.0.0.12:2376", "tcp://10.0.0.13:2376"]


def test_building_a_client_does_not_call_the_daemon(fleet: FleetConfig) -> None:
    started = time.monotonic()
    api = engine(fleet, Clock()).api  # a dead endpoint: must not fail or block here
    assert api is not None
    assert time.monotonic() - started < 0.5
    assert api.trust_env is False  # no REQUESTS_CA_BUNDLE / proxy from the environment


class Pinged:
    """A client whose health checks (``ping``) answer or not, as the test says; counts them."""

    def __init__(self) -> None:
        self.answers = True
        self.hang = 0.0
        self.pings = 0
        self.lock = threading.Lock()

    def ping(self) -> bool:
        with self.lock:
            self.pings += 1
        if self.hang:
            time.sleep(self.hang)
        if not self.answers:
            raise requests.exceptions.ConnectTimeout("timed out")
        return True

    def info(self) -> dict[str, object]:
        return {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "xfs"]]}

    def close(self) -> None:
        pass


def checked_engine(fleet: FleetConfig, clock: Clock, client: Pinged, name: str = "ax1") -> Engine:
    return Engine(Endpoint(name, "unix:///nonexistent.sock"), fleet.runtime, clock=clock,
                  connect=lambda _e, _t, _p: client)  # type: ignore[arg-type, return-value]


def refused(_api: object) -> None:
    raise requests.exceptions.ConnectionError("refused")


def test_a_call_without_an_answer_counts_against_nothing_but_itself(fleet: FleetConfig) -> None:
    """Issue 8, items 6 and 8: a timed-out call used to mark its host down (and back it off) by itself."""
    client = Pinged()
    group = Fleet([checked_engine(fleet, Clock(), client)])
    eng = group["ax1"]
    for _ in range(5):
        with pytest.raises(CallFailed, match="got no answer"):
            eng.call(refused, "remove container")
    assert eng.available()  # five slow or lost calls, and still not down: the health checks answered
    deadline = time.monotonic() + 5
    while eng.state is not HostState.UP and time.monotonic() < deadline:
        time.sleep(0.01)
    assert eng.state is HostState.UP and client.pings >= 1 and eng.health.failures == 0
    group.close()


def test_only_failed_health_checks_make_a_host_down_then_it_backs_off_and_recovers(fleet: FleetConfig) -> None:
    clock, client = Clock(), Pinged()
    eng = checked_engine(fleet, clock, client)
    client.answers = False
    assert not eng.check()
    assert eng.state is HostState.SUSPECT and eng.available()  # one failed check decides nothing yet
    delays = []
    for _ in range(4):
        assert not eng.check()
        assert eng.state is HostState.DOWN
        delays.append(eng.health.retry_at - clock.seconds)
        with pytest.raises(HostDown, match="next health check in"):
            eng.call(lambda _api: "never called", "inspect")  # refused at once while down
        clock.seconds = eng.health.retry_at
    assert delays[0] < delays[2] < delays[3]  # exponential (with jitter)
    client.answers = True
    assert eng.check() and eng.state is HostState.UP and eng.health.failures == 0
    assert eng.call(lambda _api: "ok", "inspect") == "ok"


def test_when_backoff_ends_one_check_runs_not_every_caller(fleet: FleetConfig) -> None:
    """No thundering herd: callers refused by a down host ask for a check; one runs at a time."""
    clock, client = Clock(), Pinged()
    group = Fleet([checked_engine(fleet, clock, client)])
    eng = group["ax1"]
    client.answers = False
    eng.check()
    eng.check()
    assert eng.state is HostState.DOWN
    pings = client.pings
    client.answers, client.hang = True, 0.3
    clock.seconds = eng.health.retry_at  # backoff over: fifty callers arrive at once
    refusals = []
    for _ in range(50):
        try:
            eng.call(lambda _api: "called", "inspect")
        except HostDown as exc:
            refusals.append(exc)
    assert len(refusals) == 50  # still refused at once: nobody waits for the check
    deadline = time.monotonic() + 5
    while eng.state is not HostState.UP and time.monotonic() < deadline:
        time.sleep(0.01)
    assert eng.state is HostState.UP and client.pings == pings + 1  # one check, not fifty
    group.close()


def test_server_errors_are_answers_and_never_make_a_host_down(fleet: FleetConfig) -> None:
    from docker.errors import APIError

    eng = engine(fleet, Clock())
    response = requests.Response()
    response.status_code = 500

    def broken(_api: object) -> None:
        raise APIError("boom", response=response, explanation="boom")

    for what in ("start", "list"):
        with pytest.raises(EngineError, match="500"):
            eng.call(broken, what)
    assert eng.state is HostState.UP


def test_each_does_not_wait_for_a_slow_host(fleet: FleetConfig) -> None:
    release = threading.Event()
    engines = [Engine(Endpoint(f"ax{i}", "unix:///x.sock"), fleet.runtime) for i in (1, 2)]
    group = Fleet(engines)

    def work(e: Engine) -> str:
        if e.name == "ax2":
            release.wait(5)
        return e.name

    started = time.monotonic()
    results = group.each(work, timeout=0.3)
    release.set()
    assert time.monotonic() - started < 1.0
    assert results["ax1"] == "ax1"
    assert isinstance(results["ax2"], CallFailed)
    group.close()


def test_a_black_holed_host_does_not_starve_calls_to_the_healthy_ones(fleet: FleetConfig) -> None:
    """Issue 8, item 6: all hosts shared one pool, so calls stuck on one host queued the others' behind them."""
    release = threading.Event()
    engines = [Engine(Endpoint(f"ax{i}", "unix:///x.sock"), fleet.runtime) for i in (1, 2)]
    group = Fleet(engines)

    def work(e: Engine) -> str:
        if e.name == "ax2":
            release.wait(10)  # packets dropped: the call hangs until its timeout
        return e.name

    results: list[dict[str, object]] = []
    callers = [threading.Thread(target=lambda: results.append(group.each(work, timeout=1.0))) for _ in range(40)]
    started = time.monotonic()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    elapsed = time.monotonic() - started
    release.set()
    assert [r["ax1"] for r in results] == ["ax1"] * 40  # every call to the healthy host answered
    assert all(isinstance(r["ax2"], CallFailed) for r in results)
    assert elapsed < 5
    group.close()
