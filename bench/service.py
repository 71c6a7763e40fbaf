"""Service benchmark (`invoke bench.service`): what the HTTP service adds over the imported module, side by side in
one run, on the provisioned lab (the service deployed on every host, the tiny template shipped).

Three ways to the same runtime and the same engines, each timed for the same calls (start to ready, hot start,
status of a ready preview):

* **module**: ``PreviewRuntime`` imported in this process (what a Python backend does);
* **service (loopback)**: ``drape-runtime serve`` started here as its own process on 127.0.0.1, plain HTTP (what the
  service adds: HTTP, JSON, the guard, the metrics);
* **service (ax1 ingress)**: the instance deployed on ax1, through its Caddy ingress over HTTPS (what the Node
  backend sees, the TLS hop included).

Then throughput: status requests per second against one instance, with ``wrk`` when it is installed
(``apt-get install wrk``), else a Python load generator (several processes, keep-alive connections).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drape_fleet.config import FleetConfig
from drape_fleet.pki.paths import client_tls_files
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

Log = Callable[[str], None]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "mean": statistics.fmean(values),
            "n": len(values)}


@dataclass
class Http:
    """One keep-alive connection with the bench caller's token (http.client: no client library in the numbers)."""

    url: str
    token: str
    ca: Path | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(self.ca))
            self._connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port or 443, context=context, timeout=90)
        else:
            self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=90)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, path, body=data, headers=headers)
        response = self._connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None

    def close(self) -> None:
        self._connection.close()


# ---------------------------------------------------------------------------------------------------
# The three paths, the same calls
# ---------------------------------------------------------------------------------------------------

def series_module(runtime: PreviewRuntime, names: list[str], status_rounds: int) -> dict[str, list[float]]:
    ready, hot, status = [], [], []
    for name in names:
        t0 = time.perf_counter()
        got = runtime.start(name, "bench", "tiny", wait=60)
        if got.phase is not Phase.READY:
            raise RuntimeError(f"{name}: {got.phase} {got.error}")
        ready.append(time.perf_counter() - t0)
    for name in names:
        t0 = time.perf_counter()
        runtime.start(name, "bench", "tiny")
        hot.append(time.perf_counter() - t0)
    for _ in range(status_rounds):
        for name in names:
            t0 = time.perf_counter()
            runtime.status(name)
            status.append(time.perf_counter() - t0)
    for name in names:
        runtime.stop(name)
    return {"start to ready": ready, "hot start": hot, "status": status}


def series_http(client: Http, names: list[str], status_rounds: int) -> dict[str, list[float]]:
    ready, hot, status = [], [], []
    body = {"user": "bench", "framework": "tiny"}
    for name in names:
        t0 = time.perf_counter()
        code, answer = client.call("PUT", f"/v1/previews/{name}", {**body, "wait_s": 60})
        if code != 200 or answer["phase"] != "ready":
            raise RuntimeError(f"{name}: {code} {answer}")
        ready.append(time.perf_counter() - t0)
    for name in names:
        t0 = time.perf_counter()
        client.call("PUT", f"/v1/previews/{name}", body)
        hot.append(time.perf_counter() - t0)
    for _ in range(status_rounds):
        for name in names:
            t0 = time.perf_counter()
            client.call("GET", f"/v1/previews/{name}")
            status.append(time.perf_counter() - t0)
    for name in names:
        client.call("DELETE", f"/v1/previews/{name}")
    return {"start to ready": ready, "hot start": hot, "status": status}


def local_service(fleet_file: Path, pki: Path, token_digest: str, workdir: Path, log: Log) -> tuple[
        subprocess.Popen[bytes], str]:
    """``drape-runtime serve`` as its own process on loopback, over the lab's engines with the backend's certificate."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (workdir / "tokens.toml").write_text(f'[[tokens]]\ncaller = "bench"\nsha256 = "{token_digest}"\n'
                                         'scopes = ["previews", "fleet", "metrics"]\n'
                                         "limits = { rate_per_s = 100000, burst = 100000 }\n")
    ca, cert, key = client_tls_files(pki)
    (workdir / "service.toml").write_text(
        f'fleet_file = "{fleet_file}"\ninstance = "bench-local"\nport = {port}\n'
        f'tokens_file = "{workdir / "tokens.toml"}"\n\n[engine_tls]\nca = "{ca}"\ncert = "{cert}"\nkey = "{key}"\n')
    command = [sys.executable, "-m", "drape_fleet.service.cli", "--log-level", "warning", "serve",
               "--config", str(workdir / "service.toml")]
    process = subprocess.Popen(command, stderr=(workdir / "service.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                log(f"local service up on {url}")
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the local service did not start: {(workdir / 'service.log').read_text()[-2000:]}")


# ---------------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------------

def _generator(args: tuple[str, str, str | None, str, float]) -> list[float]:
    url, token, ca, path, seconds = args
    client = Http(url, token, Path(ca) if ca else None)
    latencies = []
    deadline = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < deadline:
        client.call("GET", path)
        latencies.append(time.perf_counter() - t0)
    client.close()
    return latencies


def throughput(url: str, token: str, ca: Path | None, path: str, *, seconds: float, connections: int,
               log: Log) -> dict[str, float | str]:
    """Status requests per second against one instance: wrk when installed, else Python processes."""
    wrk = shutil.which("wrk")
    if wrk:
        result = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                                 "-H", f"Authorization: Bearer {token}", url + path],
                                capture_output=True, text=True, check=True, timeout=seconds + 60)
        rps = float(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("Requests/sec")))
        p50 = next(line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("50%"))
        errors = [line.strip() for line in result.stdout.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        return {"tool": "wrk", "rps": rps, "p50": p50, "errors": "; ".join(errors) or "none"}
    log("wrk is not installed (apt-get install wrk): Python load generator")
    with ProcessPoolExecutor(max_workers=connections) as pool:
        runs = list(pool.map(_generator, [(url, token, str(ca) if ca else None, path, seconds)] * connections))
    latencies = [v for run in runs for v in run]
    return {"tool": f"python x{connections}", "rps": len(latencies) / seconds,
            "p50": f"{percentile(latencies, 50) * 1000:.1f}ms", "errors": "none"}


def module_throughput(runtime: PreviewRuntime, workspace: str, *, seconds: float,
                      threads: int) -> dict[str, float | str]:
    """The baseline: ``status`` calls per second from ``threads`` threads of this process, for ``seconds``."""
    from concurrent.futures import ThreadPoolExecutor

    def loop(_: int) -> list[float]:
        latencies = []
        deadline = time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < deadline:
            runtime.status(workspace)
            latencies.append(time.perf_counter() - t0)
        return latencies

    with ThreadPoolExecutor(threads) as pool:
        latencies = [v for run in pool.map(loop, range(threads)) for v in run]
    return {"tool": f"{threads} threads", "rps": len(latencies) / seconds,
            "p50": f"{percentile(latencies, 50) * 1000:.2f}ms", "errors": "none"}


# ---------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------

def run(fleet: FleetConfig, fleet_file: Path, *, pki: Path, ingress_url: str, ingress_ca: Path, token: str,
        count: int, status_rounds: int, seconds: float, connections: int, log: Log) -> dict[str, Any]:
    from drape_fleet.service.auth import token_digest

    results: dict[str, dict[str, list[float]]] = {}
    log(f"module: {count} previews to ready, hot starts, {status_rounds} x status")
    with PreviewRuntime.connect(fleet, pki_dir=pki) as runtime:
        results["module"] = series_module(runtime, [f"bench-m{i}" for i in range(count)], status_rounds)
        runtime.start("bench-rps", "bench", "tiny", wait=60)
        log(f"throughput of the module: {seconds:.0f} s of status calls")
        module_rps = module_throughput(runtime, "bench-rps", seconds=seconds, threads=connections)
        runtime.stop("bench-rps")
    with tempfile.TemporaryDirectory(prefix="drape-bench-service-") as scratch:
        process, url = local_service(fleet_file, pki, token_digest(token), Path(scratch), log)
        try:
            log("service on loopback: the same calls over HTTP")
            client = Http(url, token)
            results["service (loopback)"] = series_http(client, [f"bench-l{i}" for i in range(count)], status_rounds)
            client.call("PUT", "/v1/previews/bench-rps", {"user": "bench", "framework": "tiny", "wait_s": 60})
            log(f"throughput on loopback: {seconds:.0f} s of status requests")
            local_rps = throughput(url, token, None, "/v1/previews/bench-rps", seconds=seconds,
                                   connections=connections, log=log)
            client.call("DELETE", "/v1/previews/bench-rps")
            client.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    log(f"service on ax1 through its ingress ({ingress_url}): the same calls over HTTPS")
    remote = Http(ingress_url, token, ingress_ca)
    results["service (ax1 ingress)"] = series_http(remote, [f"bench-r{i}" for i in range(count)], status_rounds)
    remote.call("PUT", "/v1/previews/bench-rps", {"user": "bench", "framework": "tiny", "wait_s": 60})
    log(f"throughput through the ingress: {seconds:.0f} s of status requests")
    remote_rps = throughput(ingress_url, token, ingress_ca, "/v1/previews/bench-rps", seconds=seconds,
                            connections=connections, log=log)
    remote.call("DELETE", "/v1/previews/bench-rps")
    remote.close()
    return {"load": os.getloadavg(), "cpus": os.cpu_count(),
            "latency": {path: {call: summary(values) for call, values in calls.items()}
                        for path, calls in results.items()},
            "throughput": {"module": module_rps, "service (loopback)": local_rps, "service (ax1 ingress)": remote_rps}}


def render(results: dict[str, Any]) -> str:
    latency = results["latency"]
    paths = list(latency)
    lines = ["p50 / p95 in ms (n)      " + "".join(f"{path:>26}" for path in paths)
             + "   added p50 (loopback, ingress)"]
    for call in ("start to ready", "hot start", "status"):
        cells = "".join(f"{latency[p][call]['p50'] * 1000:>12.1f} / {latency[p][call]['p95'] * 1000:>7.1f} "
                        f"({latency[p][call]['n']:>3})" for p in paths)
        base = latency["module"][call]["p50"]
        added = ", ".join(f"{(latency[p][call]['p50'] - base) * 1000:+.1f}" for p in paths[1:])
        lines.append(f"{call:<25}{cells}   {added}")
    lines.append("")
    lines.append("status throughput (one process / one instance):")
    for path, figures in results["throughput"].items():
        lines.append(f"  {path:<24} {figures['rps']:>8.0f} req/s  p50 {figures['p50']}  ({figures['tool']}; "
                     f"errors: {figures['errors']})")
    lines.append("targets: <= 5 ms added at p50 for hot start and status; >= 500 status req/s on one instance")
    load = ", ".join(f"{v:.1f}" for v in results["load"])
    lines.append(f"this machine: {results['cpus']} cores, load average {load} at the end (the lab hosts, their "
                 "engines, the ingress, the load generator and the service all share them)")
    return "\n".join(lines)
