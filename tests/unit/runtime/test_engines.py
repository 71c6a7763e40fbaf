from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from drape_fleet.config import FleetConfig
from drape_fleet.runtime import clock as runtime_clock
from drape_fleet.runtime.engines import Endpoint, Engine, Fleet, TlsFiles, tls_endpoints
from drape_fleet.runtime.errors import EngineError, HostUnavailable


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


def test_failures_back_off_exponentially_and_recover(fleet: FleetConfig) -> None:
    clock = Clock()
    eng = engine(fleet, clock)

    def refused(_api: object) -> None:
        raise requests.exceptions.ConnectionError("refused")

    delays = []
    for _ in range(4):
        with pytest.raises(HostUnavailable, match="refused"):
            eng.call(refused, "ping")
        delays.append(eng.health.retry_at - clock.seconds)
        with pytest.raises(HostUnavailable, match="next try"):
            eng.call(lambda _api: "never called", "ping")  # fails fast while in backoff
        clock.seconds = eng.health.retry_at
    assert not eng.health.healthy
    assert delays[0] < delays[1] < delays[2] < delays[3]
    assert eng.call(lambda _api: "ok", "ping") == "ok"
    assert eng.health.healthy and eng.health.failures == 0


def test_server_errors_mark_down_only_for_critical_calls(fleet: FleetConfig) -> None:
    from docker.errors import APIError

    eng = engine(fleet, Clock())
    response = requests.Response()
    response.status_code = 500

    def broken(_api: object) -> None:
        raise APIError("boom", response=response, explanation="boom")

    with pytest.raises(EngineError, match="500"):
        eng.call(broken, "start")
    assert eng.health.healthy
    with pytest.raises(EngineError):
        eng.call(broken, "list", critical=True)
    assert not eng.health.healthy


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
    assert isinstance(results["ax2"], HostUnavailable)
    group.close()
