"""Runtime benchmark (`invoke bench.runtime`): the runtime against raw Docker on the same lab engine, in one run,
each ratio printed next to its target.

* **Start until ready** (target <= 1.2x): ``start()`` until the preview answers HTTP, against ``docker run -d -p``
  with the same CPU weight and memory limit, on the same engine and connection, until HTTP answers. The two
  alternate, start after start, so the machine's load weighs on both alike.
* **Where a start's time goes**: the same steps the claim makes, one by one (make a network or take a spare, create,
  the count listing, the look-up on the other hosts, start, the first HTTP answer), next to raw Docker's.
* **Hot start** (target <= 1.5x one inspect round trip): ``start()`` of a running preview, against one
  ``GET /containers/{id}/json`` on the same connection, alternating.
* **Placement decision** (target <= 5 ms at 100 hosts x 2,000 previews): what ``place()`` does per decision, the
  views of every host from their watches and the ranking, over a simulated fleet whose listings went through the
  watches' own code (no engines).

Run on the lab: every engine call goes over the same mutual-TLS connection the backend uses.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from docker.errors import APIError

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime import holders, lifecycle
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Endpoint, Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.spec import make_request
from drape_fleet.runtime.state import parse_container
from drape_fleet.runtime.untrusted import http_answers
from drape_fleet.runtime.views import Observer

GIB = 1024**3
IMAGE = "drape-lab/preview-tiny:1"
RAW_LABEL = "bench=raw"
SMALL = PreviewResources(cpus=0.1, memory_mib=64, pids_limit=256, disk_gib=1, tmp_mib=16)
"""Every benchmark preview on one lab host at once (20 of the lab's default size do not fit in its 4 GiB); the
start path is the same whatever the size."""
RAW_LIMITS: dict[str, Any] = {"cpu_shares": max(2, int(SMALL.cpus * 1024)), "mem_limit": SMALL.memory_bytes,
                               "memswap_limit": SMALL.memory_bytes, "pids_limit": SMALL.pids_limit}
"""The raw run gets the previews' own CPU weight and memory: like for like. With Docker's default weight (1024
against the previews' 102) the raw container won every contention for the CPU on a loaded machine, and the gap
measured that, not the runtime."""
TARGETS = {"start until ready / raw docker run until HTTP": 1.2, "hot start / one inspect round trip": 1.5}
DECISION_TARGET_MS = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "mean": statistics.fmean(values),
            "n": len(values)}


def _until_http(address: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if http_answers(address, port, "/", budget=1.0):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{address}:{port} never answered")


# ---------------------------------------------------------------------------------------------------
# Start until ready, against raw docker run, alternating
# ---------------------------------------------------------------------------------------------------

def raw_run(engine: Engine, address: str, name: str, parts: dict[str, list[float]]) -> float:
    """`docker run -d -p` with the previews' limits, through the same connection: create + start, then until HTTP
    answers. Returns seconds."""
    t0 = time.monotonic()
    config = engine.api.create_host_config(port_bindings={"3000/tcp": (address, None)}, **RAW_LIMITS)
    created = engine.call(lambda api: api.create_container(IMAGE, name=name, host_config=config, ports=[3000],
                                                           labels={"bench": "raw"}, use_config_proxy=False), "create")
    t1 = time.monotonic()
    engine.call(lambda api: api.start(created["Id"]), "start")
    t2 = time.monotonic()
    port = int(engine.call(lambda api: api.port(created["Id"], 3000), "port")[0]["HostPort"])
    t3 = time.monotonic()
    _until_http(address, port, time.monotonic() + 30)
    t4 = time.monotonic()
    for key, value in (("raw: create", t1 - t0), ("raw: start", t2 - t1), ("raw: port (inspect)", t3 - t2),
                       ("raw: start returned -> HTTP answers", t4 - t3)):
        parts.setdefault(key, []).append(value)
    engine.call(lambda api: api.remove_container(created["Id"], force=True), "remove", slow=True)
    return t4 - t0


def module_start(runtime: PreviewRuntime, workspace: str) -> float:
    t0 = time.monotonic()
    status = runtime.start(workspace, "bench", "tiny", resources=SMALL, wait=60)
    if status.phase is not Phase.READY:
        raise RuntimeError(f"{workspace}: {status.phase} {status.error}")
    return time.monotonic() - t0


def dissected_start(runtime: PreviewRuntime, host: str, workspace: str, parts: dict[str, list[float]]) -> None:
    """The claim's steps one by one, as ``claims.Claimer`` makes them, each timed."""
    engine = runtime.fleet[host]
    settings = runtime.settings
    address = str(runtime.config.host(host).private_address)
    request = make_request(settings, runtime.config.hosts, workspace=workspace, user="bench", framework="tiny",
                           resources=SMALL)
    t0 = time.monotonic()
    network = holders.make_network(engine, settings, address=address, rng=random.Random()).name  # noqa: S311 - a subnet, not a secret
    t1 = time.monotonic()
    container_id = lifecycle.create(engine, request, settings, network=network, created=datetime.now(UTC),
                                    address=address)
    t2 = time.monotonic()
    view = runtime.observer.host_view(host)
    t3 = time.monotonic()
    runtime.observer.find(workspace, hosts=[h for h in runtime.fleet.names if h != host])
    t4 = time.monotonic()
    record = lifecycle.check_claim(view, container_id, network, settings).record
    assert record is not None
    port = lifecycle.start(engine, record)
    t5 = time.monotonic()
    _until_http(address, port, time.monotonic() + 30)
    t6 = time.monotonic()
    for key, value in (("claim: make a network (a spare: none)", t1 - t0), ("claim: create", t2 - t1),
                       ("claim: count listing (beside the next)", t3 - t2),
                       ("claim: look-up on the other hosts", t4 - t3), ("claim: start + inspect", t5 - t4),
                       ("claim: start returned -> HTTP answers", t6 - t5),
                       ("claim without a spare network, in all (a burst past the spares)", t6 - t0)):
        parts.setdefault(key, []).append(value)
    lifecycle.discard(engine, record)


def starts(runtime: PreviewRuntime, host: str, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    engine = runtime.fleet[host]
    address = str(runtime.config.host(host).private_address)
    others = [h for h in runtime.fleet.names if h != host]
    for other in others:  # every start goes to the host raw Docker uses
        runtime.cordon(other, "bench")
    parts: dict[str, list[float]] = {}
    run_id = secrets.token_hex(3)  # a raw container left by an earlier run never takes this run's names
    raw: list[float] = []
    ours: list[float] = []
    try:
        module_start(runtime, "bench-warm")  # the first one makes the host's spare networks
        runtime.stop("bench-warm")
        time.sleep(1)
        for i in range(count):
            raw.append(raw_run(engine, address, f"bench-raw-{run_id}-{i}", parts))
            ours.append(module_start(runtime, f"bench-{i}"))
            time.sleep(0.3)  # the spare network that start took is made again in the background
        log(f"dissecting {max(3, count // 4)} starts into their steps")
        for i in range(max(3, count // 4)):
            dissected_start(runtime, host, f"bench-cut-{i}", parts)
    finally:
        for other in others:
            runtime.uncordon(other)
    return {"raw": raw, "ours": ours, "parts": parts}


def hot_starts(runtime: PreviewRuntime, count: int) -> tuple[list[float], list[float]]:
    """Hot ``start()`` of the previews started above, alternating with one inspect of the same container."""
    hot: list[float] = []
    inspect: list[float] = []
    names = [f"bench-{i}" for i in range(count)]
    for _ in range(5):
        for name in names:
            status = runtime.status(name)
            assert status is not None and status.host is not None and status.container_id is not None
            engine = runtime.fleet[status.host]
            t0 = time.monotonic()
            engine.call(lambda api, cid=status.container_id: api.inspect_container(cid), "inspect")  # type: ignore[misc]
            inspect.append(time.monotonic() - t0)
            t0 = time.monotonic()
            again = runtime.start(name, "bench", "tiny", resources=SMALL)
            hot.append(time.monotonic() - t0)
            if again.phase is not Phase.READY:
                raise RuntimeError(f"hot start of {name}: {again.phase}")
    return hot, inspect


def clean_up(runtime: PreviewRuntime, host: str, count: int) -> None:
    """What the benchmark made, gone however it ended: its previews, and raw containers (a create whose answer was
    lost on a loaded engine still made one)."""
    dissected = [f"bench-cut-{i}" for i in range(max(3, count // 4))]
    for workspace in ["bench-warm", *(f"bench-{i}" for i in range(count)), *dissected]:
        with contextlib.suppress(RuntimeFailure):
            runtime.stop(workspace)
    engine = runtime.fleet[host]
    with contextlib.suppress(RuntimeFailure, APIError):
        for container in engine.call(lambda api: api.containers(all=True, filters={"label": RAW_LABEL}), "list"):
            engine.call(lambda api, cid=container["Id"]: api.remove_container(cid, force=True),  # type: ignore[misc]
                        "remove", slow=True)


# ---------------------------------------------------------------------------------------------------
# Placement decisions at 100 hosts x 2,000 previews, through the watches' code
# ---------------------------------------------------------------------------------------------------

class _Listing:
    """An engine's answers to the watch's listings: 2,000 previews of ours, no volumes, no networks."""

    def __init__(self, host: int, per_host: int, now: datetime) -> None:
        self.entries = [_entry(host, i, now) for i in range(per_host)]

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        return self.entries

    def volumes(self, filters: Any = None) -> dict[str, Any]:
        return {"Volumes": []}

    def networks(self, filters: Any = None) -> list[dict[str, Any]]:
        return []

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "xfs"]]}

    def close(self) -> None:
        pass


def _entry(host: int, i: int, now: datetime) -> dict[str, Any]:
    claim = f"{host:04x}{i:08x}"
    workspace = f"w{host}-{i}"
    return {"Id": f"{host}-{i}", "Names": [f"/{L.container_name(workspace)}"], "State": "running",
            "HostConfig": {"NetworkMode": L.network_name(claim)}, "Mounts": [], "Ports": [],
            "Labels": {L.OWNER: "drape-fleet", L.KIND: "preview", L.WORKSPACE: workspace, L.USER: "u",
                       L.PROJECT: "p", L.FRAMEWORK: "nextjs", L.CREATED: L.format_time(now),
                       L.MEMORY: str((50 + (host * 7 + i) % 13) * 1024**2), L.CPUS: "0.05", L.PORT: "3000",
                       L.CLAIM: claim}}


def simulated_fleet(hosts: int, per_host: int) -> tuple[FleetConfig, Observer]:
    fleet = validate_fleet({
        "environment": {"name": "bench"},
        "network": {"admin_allowlist": ["203.0.113.7/32"], "backend_addresses": ["10.0.0.2/32"]},
        "provisioning": {"firewall": {"private_network": ["10.0.0.0/16"]}},
        "hosts": [{"name": f"h{h}", "public_address": f"192.0.2.{h + 1}", "private_address": f"10.0.1.{h + 1}",
                   "capacity": {"cpus": 256, "memory_gib": 128, "disk_gib": 800}} for h in range(hosts)],
    }, source="(bench)")
    now = datetime.now(UTC)
    listings = {f"h{h}": _Listing(h, per_host, now) for h in range(hosts)}
    engines = [Engine(Endpoint(name, "unix:///bench.sock"), fleet.runtime,
                      connect=lambda _e, _t, _p, listing=listing: listing)  # type: ignore[misc]
               for name, listing in listings.items()]
    observer = Observer(fleet, Fleet(engines), fleet.runtime)
    for name in listings:
        observer.watch(name).resync()  # what each watch's thread does first, through the same code
    return fleet, observer


def placement_decisions(hosts: int = 100, per_host: int = 2000, rounds: int = 30) -> dict[str, list[float]]:
    fleet, observer = simulated_fleet(hosts, per_host)
    steady: list[float] = []
    changed: list[float] = []
    for r in range(rounds):
        t0 = time.monotonic()
        order = candidates(observer.views(wait=0).values(), 7 * GIB, 4, cpu_overcommit=5)
        steady.append(time.monotonic() - t0)
        assert order
        observer.watch(f"h{r % hosts}").resync()  # one host changed since the last decision (a claim, an event)
        t0 = time.monotonic()
        candidates(observer.views(wait=0).values(), 7 * GIB, 4, cpu_overcommit=5)
        changed.append(time.monotonic() - t0)
    entries = _Listing(0, per_host, datetime.now(UTC)).entries
    parse: list[float] = []
    for _ in range(5):
        t0 = time.monotonic()
        for entry in entries:
            parse_container("h0", entry, fleet.runtime)
        parse.append(time.monotonic() - t0)
    return {f"decision, {hosts} hosts x {per_host:,} previews (views from the watches + ranking)": steady,
            "decision right after one host changed (its view rebuilt)": changed,
            f"one host's {per_host:,} containers parsed from labels (a watch's full listing)": parse}


# ---------------------------------------------------------------------------------------------------

def tiny_only(fleet: FleetConfig) -> FleetConfig:
    """The fleet with the tiny preview as its one framework. The spare network holders run the first template's
    image per port (on a production host ``fleet.images`` put every template there); the bench ships the tiny one
    alone, and without its holder image a host makes no spares and every start makes its network first."""
    frameworks = {"tiny": fleet.runtime.frameworks["tiny"]}
    return fleet.model_copy(update={"runtime": fleet.runtime.model_copy(update={"frameworks": frameworks})})


def run(fleet: FleetConfig, *, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    log("placement decisions over a simulated fleet (no engines)")
    decisions = placement_decisions()
    runtime = PreviewRuntime.connect(tiny_only(fleet), background=True, reaper=False)
    host = fleet.hosts[0].name
    try:
        log(f"{count} starts on {host}, raw docker run and start() alternating")
        measured = starts(runtime, host, count, log)
        log(f"{5 * count} hot starts, each beside one inspect")
        hot, inspect = hot_starts(runtime, count)
    finally:
        clean_up(runtime, host, count)
        runtime.close()
    return {**measured, "hot": hot, "inspect": inspect, "decisions": decisions}


def render(results: dict[str, Any]) -> str:
    p50 = statistics.median
    lines = [f"{'measure':<66} {'p50 ms':>9} {'p95 ms':>9} {'n':>4}"]

    def row(name: str, values: list[float]) -> None:
        lines.append(f"{name:<66} {p50(values) * 1000:>9.1f} {percentile(values, 95) * 1000:>9.1f} {len(values):>4}")

    row("raw docker run (create, start, port; same limits) until HTTP", results["raw"])
    row("runtime start() until ready", results["ours"])
    for name, values in results["parts"].items():
        row(f"  {name}", values)
    row("one inspect round trip", results["inspect"])
    row("runtime hot start()", results["hot"])
    for name, values in results["decisions"].items():
        row(name, values)
    lines.append("")
    ratios = {"start until ready / raw docker run until HTTP": p50(results["ours"]) / p50(results["raw"]),
              "hot start / one inspect round trip": p50(results["hot"]) / p50(results["inspect"])}
    for name, ratio in ratios.items():
        target = TARGETS[name]
        lines.append(f"{name:<52} {ratio:>5.2f}x   target <= {target}x   {'ok' if ratio <= target else 'MISSED'}")
    decision = p50(next(iter(results["decisions"].values()))) * 1000
    lines.append(f"{'placement decision, 100 hosts x 2,000 previews':<52} {decision:>5.2f} ms target <= "
                 f"{DECISION_TARGET_MS} ms {'ok' if decision <= DECISION_TARGET_MS else 'MISSED'}")
    return "\n".join(lines)
