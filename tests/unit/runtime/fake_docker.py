"""A fake Docker engine per host, behind the runtime's one seam (``Engine.call`` hands it to the runtime's code
in place of docker-py's ``APIClient``). In memory, and only the part of the Engine API the runtime uses, shaped
as Docker 20.10 answers it: listings and inspections with the same keys, 404/409/403 answers as docker-py raises
them (``NotFound``, ``APIError`` with a response), a name taken twice refused, overlapping network pools
refused, archive reads and writes, ``HEAD /containers/{id}/archive`` with its stat header.

What a preview's dev server does is up to the test: a started container gets a real HTTP server on the host's
(loopback) address and published port, answering 200 once ``ready`` is set (the default) and 503 before;
``phase`` is what its template would write to ``/drape/phase``. ``down = True`` makes every call fail like a
host whose network is gone. ``calls`` records every API call, to count round trips.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import APIError, NotFound

from drape_fleet.runtime import labels as L

if TYPE_CHECKING:
    from drape_fleet.runtime.clock import Clock


def api_error(status: int, message: str) -> APIError:
    """What docker-py raises for an error answer: ``NotFound`` for 404, ``APIError`` otherwise."""
    response = requests.Response()
    response.status_code = status
    return (NotFound if status == 404 else APIError)(message, response=response, explanation=message)


def _rfc3339(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # nanoseconds, as the engine writes them


class _DevServer:
    """The preview's dev server: a real HTTP server on the host address, so the runtime's readiness probe is
    the real one."""

    def __init__(self, address: str, container: FakeContainer) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if container.ready else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class FakeContainer:
    id: str
    name: str
    body: dict[str, Any]
    status: str = "created"
    exit_code: int = 0
    ready: bool = True
    """Whether the dev server answers HTTP (200) once the container runs; 503 otherwise."""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """Path -> (content, mtime as RFC 3339)."""
    logs: bytes = b""
    server: _DevServer | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("Labels") or {})

    @property
    def network(self) -> str:
        return str(self.body["HostConfig"]["NetworkMode"])

    def set_phase(self, text: str) -> None:
        self.files["/drape/phase"] = (text.encode() + b"\n", "")

    def stop(self, code: int = 0) -> None:
        self.status, self.exit_code = "exited", code
        if self.server is not None:
            self.server.close()
            self.server = None


class FakeHost:
    """One host's engine. Thread-safe: the runtime calls it from many threads."""

    def __init__(self, name: str, address: str, clock: Clock) -> None:
        self.name = name
        self.address = address
        self.clock = clock
        self.timeout = 10
        self.down = False
        self.ready_on_start = True
        self.faults: dict[str, APIError] = {}
        """Call name -> the error its next call raises (once)."""
        self.calls: list[str] = []
        self.by_id: dict[str, FakeContainer] = {}
        """Every container, by id."""
        self.network_table: dict[str, dict[str, Any]] = {}
        self.volume_table: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    # -- the test's side --------------------------------------------------------------------------

    def container(self, name_or_id: str) -> FakeContainer:
        with self._lock:
            return self._find(name_or_id)

    def named(self, prefix: str) -> list[FakeContainer]:
        with self._lock:
            return [c for c in self.by_id.values() if c.name.startswith(prefix)]

    def count(self, call: str) -> int:
        with self._lock:
            return self.calls.count(call)

    def close_servers(self) -> None:
        with self._lock:
            for container in self.by_id.values():
                container.stop(container.exit_code)

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(self, what: str) -> None:
        if self.down:
            raise requests.exceptions.ConnectionError(f"{self.name}: connection refused")
        with self._lock:
            self.calls.append(what)
            fault = self.faults.pop(what, None)
        if fault is not None:
            raise fault

    def _find(self, name_or_id: str) -> FakeContainer:
        for container in self.by_id.values():
            if name_or_id in (container.id, container.name):
                return container
        raise api_error(404, f"No such container: {name_or_id}")

    @staticmethod
    def _matches(labels: Mapping[str, str], wanted: list[str] | str) -> bool:
        for item in [wanted] if isinstance(wanted, str) else wanted:
            key, _, value = item.partition("=")
            if key not in labels or (value and labels[key] != value):
                return False
        return True

    def _entry(self, container: FakeContainer) -> dict[str, Any]:
        host_config = container.body["HostConfig"]
        mounts = [{"Type": "bind", "Source": b.split(":")[0], "Destination": b.split(":")[1],
                   "RW": not b.endswith(":ro")} for b in host_config.get("Binds") or []]
        ports = []
        if container.server is not None:
            for private in container.body.get("ExposedPorts") or {}:
                ports.append({"IP": self.address, "PrivatePort": int(private.split("/")[0]),
                              "PublicPort": container.server.port, "Type": "tcp"})
        return {"Id": container.id, "Names": [f"/{container.name}"], "Image": container.body.get("Image"),
                "State": container.status, "Labels": container.labels, "Mounts": mounts, "Ports": ports,
                "HostConfig": {"NetworkMode": container.network}}

    # -- containers -------------------------------------------------------------------------------

    def containers(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = (filters or {}).get("label", [])
        workspace = next((w.partition("=")[2] for w in wanted if w.startswith(f"{L.WORKSPACE}=")), None)
        self._call("containers" if workspace is None else f"containers:{workspace}")
        with self._lock:
            return [self._entry(c) for c in self.by_id.values()
                    if (all or c.status == "running") and self._matches(c.labels, wanted)]

    def inspect_container(self, name_or_id: str) -> dict[str, Any]:
        self._call("inspect_container")
        with self._lock:
            container = self._find(name_or_id)
            bindings = {}
            if container.server is not None:
                for private in container.body.get("ExposedPorts") or {}:
                    bindings[private] = [{"HostIp": self.address, "HostPort": str(container.server.port)}]
            return {"Id": container.id, "Name": f"/{container.name}",
                    "State": {"Status": container.status, "Running": container.status == "running",
                              "ExitCode": container.exit_code},
                    "Config": {"Labels": container.labels, "Image": container.body.get("Image"),
                               "Env": list(container.body.get("Env") or [])},
                    "HostConfig": dict(container.body["HostConfig"]),
                    "NetworkSettings": {"Ports": bindings}}

    def create_container_from_config(self, body: dict[str, Any], name: str) -> dict[str, str]:
        self._call("create_container")
        with self._lock:
            if any(c.name == name for c in self.by_id.values()):
                raise api_error(409, f'Conflict. The container name "/{name}" is already in use')
            network = body["HostConfig"]["NetworkMode"]
            if network not in self.network_table:
                raise api_error(404, f"network {network} not found")
            container = FakeContainer(id=secrets.token_hex(32), name=name, body=json.loads(json.dumps(body)),
                                      ready=self.ready_on_start)
            self.by_id[container.id] = container
            return {"Id": container.id, "Warnings": []}

    def start(self, container_id: str) -> None:
        self._call("start")
        with self._lock:
            container = self._find(container_id)
            if container.status != "running":
                bindings = container.body["HostConfig"].get("PortBindings") or {}
                host_ip = next((b[0].get("HostIp") for b in bindings.values() if b), self.address)
                container.server = _DevServer(host_ip or self.address, container)
                container.status = "running"

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._call("stop")
        with self._lock:
            self._find(container_id).stop(0)

    def rename(self, container_id: str, name: str) -> None:
        self._call("rename")
        with self._lock:
            container = self._find(container_id)
            if any(c.name == name and c is not container for c in self.by_id.values()):
                raise api_error(409, f'Conflict. The container name "/{name}" is already in use')
            container.name = name

    def remove_container(self, container_id: str, force: bool = False, v: bool = False) -> None:
        self._call("remove_container")
        with self._lock:
            container = self._find(container_id)
            if container.status == "running" and not force:
                raise api_error(409, "You cannot remove a running container. Stop the container before removing")
            container.stop(container.exit_code)
            del self.by_id[container.id]

    def logs(self, container_id: str, tail: int = 5) -> bytes:
        self._call("logs")
        with self._lock:
            return b"\n".join(self._find(container_id).logs.splitlines()[-tail:])

    # -- archives: the activity stamp and the phase file ------------------------------------------

    def put_archive(self, container_id: str, path: str, data: bytes) -> bool:
        self._call("put_archive")
        with self._lock:
            container = self._find(container_id)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member)
                    content = extracted.read() if extracted is not None else b""
                    mtime = datetime.fromtimestamp(member.mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    container.files[path.rstrip("/") + "/" + member.name] = (content, mtime)
            return True

    def get_archive(self, container_id: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        self._call("get_archive")
        with self._lock:
            container = self._find(container_id)
            if path not in container.files:
                raise api_error(404, f"Could not find the file {path} in container {container_id}")
            content, _ = container.files[path]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        return iter([buffer.getvalue()]), {"name": info.name, "size": len(content)}

    def _url(self, pathfmt: str, *args: str) -> str:
        return pathfmt.format(*args)

    def head(self, url: str, params: Mapping[str, str], timeout: float | None = None) -> Any:
        self._call("head_archive")
        container_id = url.split("/")[2]
        with self._lock:
            try:
                container = self._find(container_id)
            except NotFound:
                return _Head(404, {})
            if params["path"] not in container.files:
                return _Head(404, {})
            _, mtime = container.files[params["path"]]
        stat = {"name": params["path"].rsplit("/", 1)[-1], "mtime": mtime, "mode": 420}
        return _Head(200, {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()})

    # -- networks ---------------------------------------------------------------------------------

    def create_network(self, name: str, driver: str | None = None, options: Mapping[str, str] | None = None,
                       ipam: Any = None, check_duplicate: bool | None = None, internal: bool = False,
                       labels: Mapping[str, str] | None = None) -> dict[str, str]:
        self._call("create_network")
        subnet = IPv4Network(ipam["Config"][0]["Subnet"])
        with self._lock:
            if name in self.network_table:
                raise api_error(409, f"network with name {name} already exists")
            if any(subnet.overlaps(n["subnet"]) for n in self.network_table.values()):
                raise api_error(403, "Pool overlaps with other one on this address space")
            network = {"Name": name, "Id": secrets.token_hex(32), "Labels": dict(labels or {}),
                       "Created": _rfc3339(self.clock), "subnet": subnet, "Options": dict(options or {})}
            self.network_table[name] = network
            return {"Id": network["Id"], "Warning": ""}

    def remove_network(self, name: str) -> None:
        self._call("remove_network")
        with self._lock:
            if name not in self.network_table:
                raise api_error(404, f"network {name} not found")
            if any(c.network == name for c in self.by_id.values()):
                raise api_error(403, f"error while removing network: network {name} has active endpoints")
            del self.network_table[name]

    def networks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self._call("networks")
        with self._lock:
            wanted = (filters or {}).get("label", [])
            return [{k: v for k, v in n.items() if k != "subnet"} for n in self.network_table.values()
                    if self._matches(n["Labels"], wanted)]

    # -- volumes (the cordon) ---------------------------------------------------------------------

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        self._call("create_volume")
        with self._lock:  # like the engine: a name that exists is returned as it is, labels unchanged
            return self.volume_table.setdefault(name, {"Name": name, "Driver": "local", "Labels": dict(labels or {})})

    def inspect_volume(self, name: str) -> dict[str, Any]:
        self._call("inspect_volume")
        with self._lock:
            if name not in self.volume_table:
                raise api_error(404, f"get {name}: no such volume")
            return dict(self.volume_table[name])

    def remove_volume(self, name: str) -> None:
        self._call("remove_volume")
        with self._lock:
            if name not in self.volume_table:
                raise api_error(404, f"get {name}: no such volume")
            del self.volume_table[name]

    def volumes(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self._call("volumes")
        with self._lock:
            wanted = (filters or {}).get("label", [])
            return {"Volumes": [dict(v) for v in self.volume_table.values() if self._matches(v["Labels"], wanted)],
                    "Warnings": None}

    # -- the engine itself ------------------------------------------------------------------------

    def ping(self) -> bool:
        self._call("ping")
        return True

    def info(self) -> dict[str, Any]:
        self._call("info")
        return {"ServerVersion": "20.10.24+dfsg1", "Driver": "overlay2", "DriverStatus": [["Backing Filesystem",
                "extfs"]], "NCPU": 2, "MemTotal": 4 * 1024**3}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Head:
    status_code: int
    headers: dict[str, str]


def foreign_cordon(host: FakeHost) -> None:
    """A volume named like the cordon that this runtime did not make."""
    host.volume_table[L.CORDON_VOLUME] = {"Name": L.CORDON_VOLUME, "Driver": "local", "Labels": {"made-by": "someone"}}
