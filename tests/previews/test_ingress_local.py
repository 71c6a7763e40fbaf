"""The preview ingress as a host runs it, on this machine: Debian's Caddy with the site the deploy renders, the
real gate reading this machine's Docker engine, and a preview stand-in (a Node server that answers with the
request it got) in a container labelled as the runtime labels previews. Observations are the HTTP answers and what
the stand-in received, never the code under test. The lab version (deployed by the ingress deploy, in front of
real previews) is tests/previews/test_ingress_lab.py."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from drape_fleet.config.models import Host
from drape_fleet.config.previews import IngressSettings
from drape_fleet.ingress import host_files
from drape_fleet.ingress.gate import Gate, GateConfig, serve
from drape_fleet.ingress.links import preview_link, sign
from drape_fleet.ingress.local_engine import LocalEngine
from drape_fleet.pki.authority import init_ca, issue_names
from drape_fleet.pki.paths import ca_files

pytestmark = pytest.mark.lab
OWNER = f"ingress-test-{os.getpid()}"
DOMAIN = "preview.test"
HOST = Host(name="ax1", public_address="203.0.113.11", private_address="10.0.0.11",
            capacity={"cpus": 2, "memory_gib": 4, "disk_gib": 20})
KEY = b"local-ingress-test-key-0123456789abcdef"
# Answers every request with what it received (method, path, headers), and every WebSocket upgrade with a 101.
ECHO = """
const http = require('http')
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ path: req.url, headers: req.headers }))
})
server.on('upgrade', (req, socket) => {
  const accept = require('crypto').createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
               'Sec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n')
  socket.write(Buffer.from([0x81, 2, 0x68, 0x69]))
})
server.listen(3000, '0.0.0.0')
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ingress:
    client: docker.DockerClient
    image: str
    https_port: int
    ca: Path
    context: ssl.SSLContext

    def name(self, workspace: str) -> str:
        return f"{workspace}.ax1.{DOMAIN}"

    def request(self, workspace: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                                                 bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=self.context, timeout=15)
        connection.sock = self.context.wrap_socket(socket.create_connection(("127.0.0.1", self.https_port)),
                                                   server_hostname=self.name(workspace))
        # As a browser sends it: the port is part of Host (and of Origin) when it is not 443.
        host = self.name(workspace) + ("" if self.https_port == 443 else f":{self.https_port}")
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def login(self, workspace: str) -> str:
        link = preview_link(KEY, workspace=workspace, user="u-7", host="ax1", host_domain=f"ax1.{DOMAIN}",
                            https_port=self.https_port)
        parts = urllib.parse.urlsplit(link)
        status, headers, _ = self.request(workspace, f"{parts.path}?{parts.query}")
        assert status == 303, status
        return headers["set-cookie"].split(";")[0]

    def preview(self, workspace: str) -> Any:
        return self.client.containers.run(
            self.image, ["node", "-e", ECHO], detach=True, name=f"{OWNER}-{workspace}",
            labels={"drape.owner": OWNER, "drape.kind": "preview", "drape.workspace": workspace, "drape.port": "3000",
                    "drape.user": "u-7", "drape.framework": "react"})


def set_phase(container: Any, phase: str) -> None:
    data = f"installing\n{phase}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("drape/phase")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    container.put_archive("/", buffer.getvalue())


def until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingress]:
    from drape_fleet.lab.node_images import ensure_node_base

    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("Debian's caddy is not installed on this machine (./dev installs it)", pytrace=False)
    work = tmp_path_factory.mktemp("ingress")
    init_ca(work / "ca", allow_in_repo=True)
    issued = issue_names(work / "ca", "ax1", [f"*.ax1.{DOMAIN}"])
    https_port, gate_port = free_port(), free_port()
    settings = IngressSettings(domain=DOMAIN, https_port=https_port, gate_port=gate_port)
    site = host_files.previews_site(settings, HOST, cert=str(issued.cert), key=str(issued.key))
    (work / "site.caddy").write_text(site)
    (work / "Caddyfile").write_text("{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n"
                                    f"\tdefault_bind 127.0.0.1\n\thttp_port {free_port()}\n}}\nimport site.caddy\n")
    gate = Gate(GateConfig(host="ax1", host_domain=f"ax1.{DOMAIN}", owner=OWNER, key_file="-", listen_port=gate_port,
                           session_s=600, resync_s=5), LocalEngine(), KEY)
    stop = threading.Event()
    server = serve(gate.config, gate, stop)
    env = {**os.environ, "XDG_DATA_HOME": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    process = subprocess.Popen([caddy, "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"],
                               env=env, stdout=subprocess.DEVNULL, stderr=(work / "caddy.log").open("wb"))
    client = docker.from_env(timeout=120)
    try:
        if not until(lambda: socket.socket().connect_ex(("127.0.0.1", https_port)) == 0):
            pytest.fail(f"caddy did not listen: {(work / 'caddy.log').read_text()[-2000:]}", pytrace=False)
        ca_cert, _ = ca_files(work / "ca")
        context = ssl.create_default_context(cafile=str(ca_cert))
        yield Ingress(client, ensure_node_base(print), https_port, ca_cert, context)
    finally:
        process.terminate()
        process.wait(timeout=20)
        stop.set()
        server.shutdown()
        for container in client.containers.list(all=True, filters={"label": f"drape.owner={OWNER}"}):
            container.remove(force=True)
        client.close()


def test_only_a_signed_link_lets_in_and_it_opens_once(ingress: Ingress) -> None:
    ingress.preview("ws-a")
    status, _, body = ingress.request("ws-a", "/")
    assert status == 401 and b"Open this preview from Drape" in body
    forged = sign(b"not-the-key-but-long-enough-0123456789", workspace="ws-a", user="u", host="ax1", kind="link",
                  ttl_s=60)
    assert ingress.request("ws-a", f"/__drape/login?t={forged}")[0] == 403
    link = preview_link(KEY, workspace="ws-a", user="u-7", host="ax1", host_domain=f"ax1.{DOMAIN}", next_path="/x")
    path = urllib.parse.urlsplit(link)
    status, headers, _ = ingress.request("ws-a", f"{path.path}?{path.query}")
    assert status == 303 and headers["location"] == "/x"
    assert all(part in headers["set-cookie"] for part in ("drape_preview=v1.", "Secure", "HttpOnly", "SameSite=Lax"))
    assert ingress.request("ws-a", f"{path.path}?{path.query}")[0] == 403  # used once already
    cookie = headers["set-cookie"].split(";")[0]
    assert ingress.request("ws-b", "/", {"Cookie": cookie})[0] == 401  # ws-a's session does not open ws-b


def test_the_route_appears_when_ready_and_the_preview_sees_what_it_should(ingress: Ingress) -> None:
    container = ingress.preview("ws-c")
    cookie = ingress.login("ws-c")
    status, headers, _ = ingress.request("ws-c", "/", {"Cookie": cookie})
    assert status == 503 and headers["retry-after"] == "2"  # no phase file yet: not ready, the page retries
    set_phase(container, "ready")
    container.reload()
    address = container.attrs["NetworkSettings"]["IPAddress"]
    sent = {"Cookie": f"theme=dark; {cookie}; lang=en", "X-Drape-Upstream": "127.0.0.1:1",
            "Origin": f"https://{ingress.name('ws-c')}:{ingress.https_port}"}
    assert until(lambda: ingress.request("ws-c", "/", {"Cookie": cookie})[0] == 200, timeout=5)
    status, _, body = ingress.request("ws-c", "/app?q=1", sent)
    assert status == 200
    seen = json.loads(body)
    assert seen["path"] == "/app?q=1"
    assert seen["headers"]["host"] == f"{address}:3000"  # Vite >= 6 accepts its own address
    assert seen["headers"]["x-forwarded-host"].startswith(ingress.name("ws-c"))
    assert seen["headers"]["origin"] == "http://localhost"  # its own page: as from localhost (Next.js >= 16)
    assert "drape_preview" not in seen["headers"]["cookie"]
    assert "theme=dark" in seen["headers"]["cookie"] and "lang=en" in seen["headers"]["cookie"]
    assert "x-drape-upstream" not in seen["headers"]  # the client's own header went nowhere
    _, _, other = ingress.request("ws-c", "/", {"Cookie": cookie, "Origin": "https://elsewhere.example"})
    assert json.loads(other)["headers"]["origin"] == "https://elsewhere.example"  # left for the app to refuse


def test_websockets_pass_and_the_route_goes_with_the_container(ingress: Ingress) -> None:
    container = ingress.preview("ws-d")
    set_phase(container, "ready")
    cookie = ingress.login("ws-d")
    until(lambda: ingress.request("ws-d", "/", {"Cookie": cookie})[0] == 200)
    raw = ingress.context.wrap_socket(socket.create_connection(("127.0.0.1", ingress.https_port), timeout=10),
                                      server_hostname=ingress.name("ws-d"))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall((f"GET /hmr HTTP/1.1\r\nHost: {ingress.name('ws-d')}\r\nCookie: {cookie}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    answer = b""
    while not answer.endswith(b"\x81\x02hi"):  # the stand-in's frame ("Switching" holds "hi" too)
        chunk = raw.recv(4096)
        if not chunk:
            break
        answer += chunk
    raw.close()
    assert answer.startswith(b"HTTP/1.1 101") and answer.endswith(b"\x81\x02hi")
    container.remove(force=True)
    assert until(lambda: ingress.request("ws-d", "/", {"Cookie": cookie})[0] == 404, timeout=8)
