"""Runtime benchmark (`invoke bench.runtime`): the module against raw Docker on the same lab engine, hot starts,
and placement decisions over a simulated fleet of 100 hosts x 2,000 containers (pure, no engines).

Run on the lab: every engine call goes over the same mutual-TLS connection the backend uses.
"""

from __future__ import annotations

import http.client
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.state import HostView, PreviewRecord, parse_container

GIB = 1024**3
IMAGE = "drape-lab/preview-tiny:1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "mean": statistics.fmean(values),
            "n": len(values)}


def _http_ready(address: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(address, port, timeout=1)
        try:
            connection.request("GET", "/")
            if connection.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.02)
        finally:
            connection.close()
    raise TimeoutError(f"{address}:{port} never answered")


def raw_docker(runtime: PreviewRuntime, host: str, count: int) -> tuple[list[float], list[float]]:
    """`docker run -d -p` on the same engine through the same connection: create + start, then until HTTP answers."""
    engine = runtime.fleet[host]
    address = str(runtime.config.host(host).private_address)
    started: list[float] = []
    ready: list[float] = []
    for i in range(count):
        name = f"bench-raw-{i}"
        t0 = time.monotonic()
        config = engine.api.create_host_config(port_bindings={"3000/tcp": (address, None)})
        created = engine.call(lambda api, c=config, n=name: api.create_container(  # type: ignore[misc]
            IMAGE, name=n, host_config=c, ports=[3000], labels={"bench": "raw"}, use_config_proxy=False), "create")
        engine.call(lambda api, cid=created["Id"]: api.start(cid), "start")  # type: ignore[misc]
        started.append(time.monotonic() - t0)
        port = int(engine.call(lambda api, cid=created["Id"]: api.port(cid, 3000), "port")[0]["HostPort"])  # type: ignore[misc]
        _http_ready(address, port, time.monotonic() + 30)
        ready.append(time.monotonic() - t0)
        engine.call(lambda api, cid=created["Id"]: api.remove_container(cid, force=True), "remove")  # type: ignore[misc]
    return started, ready


def through_module(runtime: PreviewRuntime, count: int) -> tuple[list[float], list[float]]:
    """`start()` of new previews, one after another: to ready, and then a hot start of each."""
    cold: list[float] = []
    hot: list[float] = []
    names = [f"bench-{i}" for i in range(count)]
    for name in names:
        t0 = time.monotonic()
        status = runtime.start(name, "bench", "tiny", wait=60)
        if status.phase is not Phase.READY:
            raise RuntimeError(f"{name}: {status.phase} {status.error}")
        cold.append(time.monotonic() - t0)
    for _ in range(3):
        for name in names:
            t0 = time.monotonic()
            status = runtime.start(name, "bench", "tiny")
            hot.append(time.monotonic() - t0)
            if status.phase is not Phase.READY:
                raise RuntimeError(f"hot start of {name}: {status.phase}")
    for name in names:
        runtime.stop(name)
    return cold, hot


def simulated_fleet(hosts: int = 100, per_host: int = 2000) -> tuple[list[HostView], list[dict[str, Any]]]:
    now = datetime.now(UTC)
    views: list[HostView] = []
    for h in range(hosts):
        records = tuple(
            PreviewRecord(host=f"h{h}", id=f"{h}-{i}", name=f"drape-pv-w{h}-{i}", state="running",
                          workspace=f"w{h}-{i}", user="u", project="p", framework="nextjs", created=now,
                          memory=(50 + (h * 7 + i) % 13) * 1024**2, cpus=0.05, port=3000, claim="abcdefabcdef")
            for i in range(per_host))
        views.append(HostView(name=f"h{h}", reachable=True, memory_capacity=128 * GIB, cpu_capacity=256,
                              previews=records))
    entry = {"Id": "x", "Names": ["/drape-pv-w"], "State": "running",
             "HostConfig": {"NetworkMode": L.network_name("w", "abcdefabcdef")}, "Mounts": [], "Ports": [],
             "Labels": {L.OWNER: "drape-fleet", L.KIND: "preview", L.WORKSPACE: "w", L.USER: "u", L.PROJECT: "p",
                        L.FRAMEWORK: "nextjs", L.CREATED: L.format_time(now), L.MEMORY: str(GIB), L.CPUS: "4",
                        L.PORT: "3000", L.CLAIM: "abcdefabcdef"}}
    return views, [entry] * per_host


def placement_decisions(runtime_settings: Any, rounds: int = 15) -> dict[str, dict[str, float]]:
    views, entries = simulated_fleet()
    decide: list[float] = []
    for _ in range(rounds):
        t0 = time.monotonic()
        order = candidates(views, 7 * GIB, 4, cpu_overcommit=5)
        decide.append(time.monotonic() - t0)
        assert order
    parse: list[float] = []
    for _ in range(rounds):
        t0 = time.monotonic()
        for entry in entries:
            parse_container("h0", entry, runtime_settings)
        parse.append(time.monotonic() - t0)
    return {"decide (100 hosts x 2,000 containers)": summary(decide),
            "rebuild one host's 2,000 containers from labels": summary(parse)}


def run(fleet: FleetConfig, *, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    runtime = PreviewRuntime.connect(fleet, background=False, reaper=False)
    try:
        host = fleet.hosts[0].name
        log(f"raw docker create+start on {host}, {count} times")
        raw_started, raw_ready = raw_docker(runtime, host, count)
        log(f"through the runtime: {count} cold starts to ready, {3 * count} hot starts")
        cold, hot = through_module(runtime, count)
    finally:
        runtime.close()
    log("placement over a simulated fleet (pure)")
    return {
        "raw docker: create+start": summary(raw_started),
        "raw docker: create+start until HTTP answers": summary(raw_ready),
        "runtime: start() until ready (claim, network, create, start, HTTP)": summary(cold),
        "runtime: hot start()": summary(hot),
        **placement_decisions(fleet.runtime),
    }


def render(results: dict[str, dict[str, float]]) -> str:
    width = max(len(k) for k in results)
    lines = [f"{'measure':<{width}}  {'p50 ms':>9}  {'p95 ms':>9}  {'n':>4}"]
    for name, values in results.items():
        lines.append(f"{name:<{width}}  {values['p50'] * 1000:>9.1f}  {values['p95'] * 1000:>9.1f}  "
                     f"{int(values['n']):>4}")
    return "\n".join(lines)
