"""Bad input against real engines: requests refused before any host is touched, look-alike containers, an
engine that answers with errors."""

from __future__ import annotations

import ipaddress
import json
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from json_http import JsonHandler
from runtime_lab_support import RuntimeLab

from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime.engines import Endpoint, TlsFiles, tls_endpoints
from drape_fleet.runtime.errors import BadRequest, RequestTooLarge, UnknownFramework
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab

GIB = 1024**3


def test_bad_requests_are_refused_before_any_host_is_touched(lab: RuntimeLab,
                                                             runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    with pytest.raises(UnknownFramework):
        runtime.start("ok-1", "u1", "angular")
    for workspace in ("../../etc", "a b", "x" * 80, "-rf", "ws\n"):
        with pytest.raises(BadRequest, match="workspace"):
            runtime.start(workspace, "u1", "tiny")
    with pytest.raises(RequestTooLarge):
        runtime.start("ok-1", "u1", "tiny", resources=PreviewResources(memory_mib=16 * 1024))
    assert all(lab.owned(h) == [] for h in lab.fleet.host_names)


def test_a_look_alike_container_is_ignored_reported_and_counted(lab: RuntimeLab,
                                                                runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    real = runtime.start("la-real", "u1", "tiny", wait=30)
    assert real.phase is Phase.READY and real.host == "ax1"
    labels = json.loads(lab.on_host("ax1", "docker inspect -f '{{json .Config.Labels}}' drape-pv-la-real"))
    # Someone runs, by hand, a container claiming to be the preview of workspace "la-fake": our labels, the
    # expected name, 3 GiB reserved, but the Docker socket mounted.
    fake = {**labels, "drape.workspace": "la-fake", "drape.memory": str(3 * GIB)}
    flags = " ".join(f"--label {k}={v}" for k, v in fake.items())
    network = f"drape-net-la-fake-{fake['drape.claim']}"
    lab.on_host("ax1", f"docker network create --label drape.owner=drape-fleet {network} >/dev/null && "
                       f"docker run -d --name drape-pv-la-fake --network {network} {flags} "
                       "-v /var/run/docker.sock:/var/run/docker.sock drape-lab/preview-tiny:1 >/dev/null")
    hosts = {h.name: h for h in runtime.hosts()}
    (foreign,) = hosts["ax1"].foreign
    assert foreign.name == "drape-pv-la-fake" and "docker.sock" in foreign.reason
    assert hosts["ax1"].memory_used >= 3 * GIB  # counted on the safe side
    assert "la-fake" not in {s.workspace for s in runtime.previews()}
    assert runtime.status("la-fake") is None
    placed = runtime.start("la-fake", "u1", "tiny", wait=30)  # never adopted: placed elsewhere
    assert placed.phase is Phase.READY and placed.host != "ax1"
    report = runtime.reap()
    assert not report.errors
    assert "drape-pv-la-fake" in lab.on_host("ax1", "docker ps --format '{{.Names}}'")  # left alone
    runtime.stop("la-fake")
    assert "drape-pv-la-fake" in lab.on_host("ax1", "docker ps --format '{{.Names}}'")


class _BrokenEngine(JsonHandler):
    """Answers listings like an empty engine, and every change with a 500 (a disk full, a broken daemon)."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith("/_ping"):
            self.send_json(200, "OK")
        elif path.endswith("/containers/json") or path.endswith("/networks"):
            self.send_json(200, [])
        elif path.endswith("/volumes"):
            self.send_json(200, {"Volumes": [], "Warnings": None})
        elif path.endswith("/info"):
            self.send_json(200, {"ServerVersion": "broken", "Driver": "overlay2", "DriverStatus": []})
        elif path.endswith("/events"):  # a stream that stays open and says nothing, as a quiet engine's does
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(60)
        else:
            self.send_json(500, {"message": "fake engine: i/o error"})

    changes: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        _BrokenEngine.changes.append(self.path)
        self.send_json(500, {"message": "fake engine: no space left on device"})

    do_DELETE = do_PUT = do_HEAD = do_POST


@pytest.fixture
def broken_engine(lab: RuntimeLab, tmp_path: Path) -> Iterator[int]:
    """An engine on 127.0.0.1 over the same mutual TLS: a server certificate for 127.0.0.1 from the lab CA
    (issued into a copy of the PKI directory, so the lab's own stays as provisioning made it)."""
    from drape_fleet.pki.authority import issue_host
    from drape_fleet.pki.paths import trust_bundle

    pki = tmp_path / "pki"
    shutil.copytree(lab.pki, pki)
    issued = issue_host(pki, "ax9", ["127.0.0.1"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenEngine)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    context.load_verify_locations(trust_bundle(pki))
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_an_engine_that_answers_errors_does_not_stop_placement(lab: RuntimeLab, broken_engine: int) -> None:
    data = lab.fleet.model_dump(mode="json")
    spare_address = str(ipaddress.ip_network(data["provisioning"]["firewall"]["private_network"][0])[-2])
    # inside the private network as the fleet file requires; the runtime reaches ax9 at 127.0.0.1 (below)
    data["hosts"].append({"name": "ax9", "public_address": "127.0.0.9", "private_address": spare_address,
                          "roles": ["preview"], "capacity": {"cpus": 64, "memory_gib": 64, "disk_gib": 100}})
    data.pop("service", None)  # the runtime alone: ax9 runs no service (which would need a backend address)
    fleet = validate_fleet(data, source="(test)")
    files = TlsFiles.from_pki_dir(lab.pki)
    endpoints = [e for e in tls_endpoints(fleet, files) if e.host != "ax9"]
    endpoints.append(Endpoint("ax9", f"tcp://127.0.0.1:{broken_engine}", files))
    runtime = PreviewRuntime.from_endpoints(fleet, endpoints, background=False)
    try:
        # ax9 looks empty and biggest, so it is tried first; its errors send the preview to a real host
        status = runtime.start("be-1", "u1", "tiny", wait=30)
        assert status.phase is Phase.READY and status.host in ("ax1", "ax2", "ax3"), status
        assert runtime.start("be-2", "u1", "tiny", wait=30).phase is Phase.READY
        assert any("/networks/create" in path for path in _BrokenEngine.changes)  # it was tried first
        hosts = {h.name: h for h in runtime.hosts()}
        assert hosts["ax9"].reachable and hosts["ax9"].previews == 0
    finally:
        runtime.close()
