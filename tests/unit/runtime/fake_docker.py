"""A fake Docker engine per host, behind the runtime's one seam (``Engine.call`` hands the runtime's code a
``FakeClient`` in place of its ``ApiClient``). In memory, and only the part of the Engine API the runtime uses,
shaped as Docker 20.10 answers it: listings and inspections with the same keys, 404/409/403 answers as docker-py
raises them (``NotFound``, ``APIError`` with a response), a name taken twice refused, overlapping network pools
refused, archive reads (streamed, with the stat header) and writes, log tails (multiplexed frames),
``HEAD /containers/{id}/archive`` with its stat header, and the event stream (``fake_streams``).

How a host misbehaves is up to the test: ``down`` (refused at once, as a dead host), ``black_hole`` (every call
hangs until its client's timeout, the event stream goes silent: packets dropped), ``delays`` (one call takes that
long; past its client's timeout the client gives up while the engine finishes it, as Docker does with a removal),
``faults`` (the next call of a kind answers an error). A started container gets a real HTTP dev server on the
host's (loopback) address (``fake_streams.DevServer``). ``calls`` records every API call, to count round trips.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import APIError, ImageNotFound, NotFound
from fake_objects import Archives, NetworksAndVolumes
from fake_streams import (
    DevServer,
    EventLog,
    no_answer,
    refused,
)

from drape_fleet.runtime import labels as L

if TYPE_CHECKING:
    from drape_fleet.runtime.clock import Clock


def api_error(status: int, message: str) -> APIError:
    """What docker-py raises for an error answer: ``NotFound`` for 404, ``APIError`` otherwise."""
    response = requests.Response()
    response.status_code = status
    if status == 404 and "No such image" in message:  # as docker-py tells them apart
        return ImageNotFound(message, response=response, explanation=message)
    return (NotFound if status == 404 else APIError)(message, response=response, explanation=message)


def _rfc3339(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # nanoseconds, as the engine writes them


@dataclass
class FakeContainer:
    id: str
    name: str
    body: dict[str, Any]
    host: FakeHost
    status: str = "created"
    exit_code: int = 0
    finished_at: str = "0001-01-01T00:00:00Z"
    """When it exited, as the engine writes it (its zero time until then)."""
    ready: bool = True
    """Whether the dev server answers HTTP (200) once the container runs; 503 otherwise."""
    trickle: bool = False
    """The dev server sends its status line a byte a second and never finishes it."""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """Path -> (content, mtime as RFC 3339)."""
    special: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Path -> (size, mode) for what the tenant made instead of a small file: a sparse 64 GB file, a directory."""
    logs: bytes = b""
    server: DevServer | None = None
    joined: FakeContainer | None = None
    """For a network holder: the preview in its namespace."""

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("Labels") or {})

    @property
    def network(self) -> str:
        return str(self.body["HostConfig"]["NetworkMode"])

    @property
    def env(self) -> dict[str, str]:
        return dict(item.partition("=")[::2] for item in self.body.get("Env") or [])

    def set_phase(self, text: str) -> None:
        self.files["/drape/phase"] = (text.encode() + b"\n", "")

    def stop(self, code: int = 0) -> None:
        if self.status == "running":
            self.host.emit_container(self, "die")
        if self.status != "exited":
            self.finished_at = _rfc3339(self.host.clock)
        self.status, self.exit_code = "exited", code
        if self.server is not None:
            self.server.close()
            self.server = None


class _JoinedState:
    """A network holder's port answers for the preview that joined its namespace (as the real one does: the holder
    only owns the namespace and the port mapping; the preview's dev server listens in it)."""

    def __init__(self, holder: FakeContainer) -> None:
        self._holder = holder

    def _joined(self) -> FakeContainer | None:
        joined = self._holder.joined
        return joined if joined is not None and joined.status == "running" else None

    @property
    def ready(self) -> bool:
        joined = self._joined()
        return joined is not None and joined.ready

    @property
    def trickle(self) -> bool:
        joined = self._joined()
        return joined is not None and joined.trickle


class FakeClient:
    """What ``Engine`` gets from ``connect``: the host's API, with the client's timeout (a black hole or a slow call
    is cut off where a real client would give up)."""

    def __init__(self, host: FakeHost, timeout: float) -> None:
        self._host = host
        self.timeout = timeout

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._host, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._host.local.timeout = self.timeout
            return target(*args, **kwargs)

        return call

    def close(self) -> None:
        pass


class FakeHost(NetworksAndVolumes, Archives):
    """One host's engine. Thread-safe: the runtime calls it from many threads."""

    def __init__(self, name: str, address: str, clock: Clock) -> None:
        self.name = name
        self.address = address
        self.clock = clock
        self.down = False
        self.black_hole = False
        self.ready_on_start = True
        self.backing_filesystem = "extfs"
        self.missing_images: set[str] = set()
        """Images this engine does not have (creating a container of one answers 404 "No such image")."""
        self.faults: dict[str, APIError] = {}
        """Call name -> the error its next call raises (once)."""
        self.head_status = 200
        """What ``HEAD /containers/{id}/archive`` answers with (an engine in trouble answers 500)."""
        self.delays: dict[str, float] = {}
        """Call name -> how long each such call takes on the engine (real seconds)."""
        self.calls: list[str] = []
        self.by_id: dict[str, FakeContainer] = {}
        self.network_table: dict[str, dict[str, Any]] = {}
        self.volume_table: dict[str, dict[str, Any]] = {}
        self.events = EventLog()
        self.served: list[Any] = []
        """Every streamed body the fake answered (archive reads, log tails), to count the bytes served."""
        self.local = threading.local()
        self._lock = threading.RLock()

    def client(self, timeout: float) -> FakeClient:
        return FakeClient(self, timeout)

    def close(self) -> None:
        """A client's close (a no-op: the fake keeps no connections)."""

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
                if container.server is not None:
                    container.server.close()
                    container.server = None

    def set_black_hole(self, on: bool) -> None:
        self.black_hole = on
        with self.events.condition:
            self.events.silent = on
            self.events.condition.notify_all()

    def restart_engine(self) -> None:
        """The engine restarts: its event streams end; its containers stop (restart policy "no")."""
        self.events.end_all()
        with self._lock:
            for container in self.by_id.values():
                container.stop(0)

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(self, what: str) -> None:
        timeout = getattr(self.local, "timeout", 10.0)
        if self.down:
            raise refused(self.name)
        if self.black_hole:
            time.sleep(min(timeout, 30.0))
            raise no_answer(what, timeout)
        with self._lock:
            self.calls.append(what)
            fault = self.faults.pop(what, None)
            delay = self.delays.get(what, 0.0)
        if fault is not None:
            raise fault
        if delay:
            time.sleep(min(delay, timeout))
            if delay > timeout:  # the client gives up; the engine goes on and finishes the call
                self.local.late = what
                return

    def _gave_up(self, what: str) -> None:
        """After a call the client gave up on: the engine did it, the client saw a timeout."""
        if getattr(self.local, "late", None) == what:
            self.local.late = None
            raise no_answer(what, getattr(self.local, "timeout", 10.0))

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

    def emit_container(self, container: FakeContainer, action: str) -> None:
        self.events.emit("container", action, container.id, {**container.labels, "name": container.name})

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
        ids = (filters or {}).get("id")
        workspace = next((w.partition("=")[2] for w in wanted if w.startswith(f"{L.WORKSPACE}=")), None)
        self._call("containers:id" if ids else "containers" if workspace is None else f"containers:{workspace}")
        with self._lock:
            return [self._entry(c) for c in self.by_id.values()
                    if (all or c.status == "running") and self._matches(c.labels, wanted)
                    and (ids is None or c.id in ids)]

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
                              "ExitCode": container.exit_code, "FinishedAt": container.finished_at},
                    "Config": {"Labels": container.labels, "Image": container.body.get("Image"),
                               "Env": list(container.body.get("Env") or [])},
                    "HostConfig": dict(container.body["HostConfig"]),
                    "NetworkSettings": {"Ports": bindings}}

    def create_container_from_config(self, body: dict[str, Any], name: str) -> dict[str, str]:
        self._call("create_container")
        with self._lock:
            if any(c.name == name for c in self.by_id.values()):
                raise api_error(409, f'Conflict. The container name "/{name}" is already in use')
            if body["Image"] in self.missing_images:
                raise api_error(404, f"No such image: {body['Image']}")
            network = body["HostConfig"]["NetworkMode"]
            if network.startswith("container:"):
                self._find(network.removeprefix("container:"))  # 404 when the holder is gone
            elif network not in self.network_table:
                raise api_error(404, f"network {network} not found")
            if body["HostConfig"].get("StorageOpt") and self.backing_filesystem != "xfs":
                raise api_error(500, "--storage-opt is supported only for overlay over xfs with 'pquota' mount "
                                     "option")
            container = FakeContainer(id=secrets.token_hex(32), name=name, body=json.loads(json.dumps(body)),
                                      host=self, ready=self.ready_on_start)
            self.by_id[container.id] = container
        self.emit_container(container, "create")
        return {"Id": container.id, "Warnings": []}

    def start(self, container_id: str) -> None:
        self._call("start")
        with self._lock:
            container = self._find(container_id)
            mode = container.network
            if container.status != "running" and mode.startswith("container:"):
                holder = self._find(mode.removeprefix("container:"))
                if holder.status != "running":
                    raise api_error(409, f"cannot join network of a non running container: {holder.id}")
                holder.joined = container
                container.status = "running"
            elif container.status != "running":
                bindings = container.body["HostConfig"].get("PortBindings") or {}
                host_ip = next((b[0].get("HostIp") for b in bindings.values() if b), self.address)
                state = _JoinedState(container) if container.labels.get(L.KIND) == L.KIND_HOLDER else container
                container.server = DevServer(host_ip or self.address, state)
                container.status = "running"
        self.emit_container(container, "start")

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._call("stop")
        with self._lock:
            self._find(container_id).stop(0)
        self._gave_up("stop")

    def rename(self, container_id: str, name: str) -> None:
        self._call("rename")
        with self._lock:
            container = self._find(container_id)
            if any(c.name == name and c is not container for c in self.by_id.values()):
                raise api_error(409, f'Conflict. The container name "/{name}" is already in use')
            container.name = name
        self.emit_container(container, "rename")

    def remove_container(self, container_id: str, force: bool = False, v: bool = False) -> None:
        self._call("remove_container")
        with self._lock:
            container = self._find(container_id)
            if container.status == "running" and not force:
                raise api_error(409, "You cannot remove a running container. Stop the container before removing")
            container.stop(container.exit_code)
            del self.by_id[container.id]
        self.emit_container(container, "destroy")
        self._gave_up("remove_container")

    # -- the engine itself ------------------------------------------------------------------------

    def ping(self) -> bool:
        self._call("ping")
        return True

    def info(self) -> dict[str, Any]:
        self._call("info")
        return {"ServerVersion": "20.10.24+dfsg1", "Driver": "overlay2", "DriverStatus": [["Backing Filesystem",
                self.backing_filesystem]], "NCPU": 2, "MemTotal": 4 * 1024**3}


def foreign_cordon(host: FakeHost) -> None:
    """A volume named like the cordon that this runtime did not make."""
    host.volume_table[L.CORDON_VOLUME] = {"Name": L.CORDON_VOLUME, "Driver": "local", "Labels": {"made-by": "someone"}}
