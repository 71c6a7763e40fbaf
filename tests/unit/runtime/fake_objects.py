"""Parts of the fake engine (``fake_docker.FakeHost`` is made of these and its containers), as Docker 20.10 answers:
networks and volumes (overlapping pools and taken names refused, events emitted for the watches), and archives and
streamed reads (what a preview's tenant controls: every body counted as it is served)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import secrets
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from docker.errors import NotFound
from fake_streams import EventLog, EventStream, FakeResponse, archive_response, log_messages, logs_response

if TYPE_CHECKING:

    from drape_fleet.runtime.clock import Clock


def _rfc3339(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # nanoseconds, as the engine writes them


class NetworksAndVolumes:
    network_table: dict[str, dict[str, Any]]
    volume_table: dict[str, dict[str, Any]]
    events: EventLog
    clock: Clock
    _lock: threading.RLock

    def _call(self, what: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _matches(labels: Mapping[str, str], wanted: list[str] | str) -> bool:
        raise NotImplementedError

    # -- networks ---------------------------------------------------------------------------------

    def create_network(self, name: str, driver: str | None = None, options: Mapping[str, str] | None = None,
                       ipam: Any = None, check_duplicate: bool | None = None, internal: bool = False,
                       labels: Mapping[str, str] | None = None) -> dict[str, str]:
        self._call("create_network")
        subnet = IPv4Network(ipam["Config"][0]["Subnet"])
        with self._lock:
            if name in self.network_table:
                raise _api_error(409, f"network with name {name} already exists")
            if any(subnet.overlaps(n["subnet"]) for n in self.network_table.values()):
                raise _api_error(403, "Pool overlaps with other one on this address space")
            network = {"Name": name, "Id": secrets.token_hex(32), "Labels": dict(labels or {}),
                       "Created": _rfc3339(self.clock), "subnet": subnet, "Options": dict(options or {})}
            self.network_table[name] = network
        self.events.emit("network", "create", network["Id"], {"name": name, "type": "bridge"})
        return {"Id": network["Id"], "Warning": ""}

    def remove_network(self, name: str) -> None:
        self._call("remove_network")
        with self._lock:
            if name not in self.network_table:
                raise _api_error(404, f"network {name} not found")
            if any(c.network == name for c in self.by_id.values()):
                raise _api_error(403, f"error while removing network: network {name} has active endpoints")
            network = self.network_table.pop(name)
        self.events.emit("network", "destroy", network["Id"], {"name": name, "type": "bridge"})

    def networks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self._call("networks")
        with self._lock:
            wanted = (filters or {}).get("label", [])
            return [{k: v for k, v in n.items() if k != "subnet"} for n in self.network_table.values()
                    if self._matches(n["Labels"], wanted)]

    # -- volumes (the cordon, stop markers) -------------------------------------------------------

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        self._call("create_volume")
        with self._lock:  # like the engine: a name that exists is returned as it is, labels unchanged
            created = name not in self.volume_table
            volume = self.volume_table.setdefault(name, {"Name": name, "Driver": "local",
                                                         "Labels": dict(labels or {})})
        if created:
            self.events.emit("volume", "create", name, {"driver": "local"})
        return volume

    def inspect_volume(self, name: str) -> dict[str, Any]:
        self._call("inspect_volume")
        with self._lock:
            if name not in self.volume_table:
                raise _api_error(404, f"get {name}: no such volume")
            return dict(self.volume_table[name])

    def remove_volume(self, name: str) -> None:
        self._call("remove_volume")
        with self._lock:
            if name not in self.volume_table:
                raise _api_error(404, f"get {name}: no such volume")
            del self.volume_table[name]
        self.events.emit("volume", "destroy", name, {"driver": "local"})

    def volumes(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self._call("volumes")
        with self._lock:
            wanted = (filters or {}).get("label", [])
            return {"Volumes": [dict(v) for v in self.volume_table.values() if self._matches(v["Labels"], wanted)],
                    "Warnings": None}



def _api_error(status: int, message: str) -> Any:
    from fake_docker import api_error

    return api_error(status, message)


class Archives:
    """Archive reads (streamed, with the stat header) and writes, log tails, the event stream."""

    events: EventLog
    served: list[Any]
    timeout: float
    head_status: int
    _lock: threading.RLock

    def _call(self, what: str) -> None:
        raise NotImplementedError

    def _find(self, name_or_id: str) -> Any:
        raise NotImplementedError

    # -- streamed reads: what a preview's tenant controls -----------------------------------------

    @contextlib.contextmanager
    def open_stream(self, path: str, *args: str, params: Mapping[str, Any], timeout: float) -> Iterator[FakeResponse]:
        kind = path.rsplit("/", 1)[-1]
        self._call(f"stream:{kind}")
        with self._lock:
            container = self._find(args[0])
            if kind == "archive":
                target = str(params["path"])
                if target in container.special:
                    size, mode = container.special[target]
                    response = archive_response(target, b"", size=size, mode=mode)
                elif target in container.files:
                    response = archive_response(target, container.files[target][0])
                else:
                    raise _api_error(404, f"Could not find the file {target} in container {args[0]}")
            else:
                response = logs_response(container.logs, int(params.get("tail", 5)))
            self.served.append(response.raw)
        try:
            yield response
        finally:
            response.close()

    def get_archive(self, container_id: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        """docker-py's own (unbounded) archive read, as it streams: what a caller that joins it all gets."""
        with self.open_stream("/containers/{0}/archive", container_id, params={"path": path}, timeout=10) as response:
            stat = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
            body = response.raw

        def chunks() -> Iterator[bytes]:
            while chunk := body.read(1 << 20):
                yield chunk

        return chunks(), stat

    def logs(self, container_id: str, tail: int = 5) -> bytes:
        """docker-py's own log read (the whole tail, however long its lines)."""
        self._call("logs")
        with self._lock:
            return b"".join(log_messages(self._find(container_id).logs)[-tail:])

    def event_stream(self, filters: Mapping[str, list[str]], *, connect_timeout: float) -> EventStream:
        self._call("events")
        stream = EventStream(self.events)
        with self.events.condition:
            self.events.streams.append(stream)
        return stream

    # -- archives: the activity stamp, the repository token ----------------------------------------

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
            if self.head_status != 200:
                return _Head(self.head_status, {})
            if params["path"] not in container.files:
                return _Head(404, {})
            _, mtime = container.files[params["path"]]
        stat = {"name": params["path"].rsplit("/", 1)[-1], "mtime": mtime, "mode": 420}
        return _Head(200, {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()})



@dataclass(frozen=True)
class _Head:
    status_code: int
    headers: dict[str, str]
