"""The gate's one seam to its host's Docker engine: read-only calls over the local socket, standard library only
(the gate runs on the host's own Python, without docker-py). Every call has a timeout; the event stream is read
line by line and reconnected by its caller."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

API_VERSION = "v1.41"
"""Debian 12's docker.io (20.10) speaks 1.41; Docker CE accepts it too."""


class EngineUnavailable(RuntimeError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class LocalEngine:
    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, Any] | None, timeout: float) -> http.client.HTTPResponse:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            connection.request("GET", f"/{API_VERSION}{path}{query}")
            return connection.getresponse()
        except OSError as exc:
            connection.close()
            raise EngineUnavailable(f"the Docker engine at {self.socket_path} does not answer: {exc}") from exc

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._get(path, params, self.timeout)
        try:
            body = response.read()
        finally:
            response.close()
        if response.status == 404:
            return None
        if response.status >= 400:
            raise EngineUnavailable(f"GET {path}: {response.status} {body[:200]!r}")
        return json.loads(body)

    def get_bytes(self, path: str, params: Mapping[str, Any] | None, max_bytes: int) -> bytes | None:
        """A bounded body (None for 404): a preview's file must not make the gate read without end."""
        response = self._get(path, params, self.timeout)
        try:
            if response.status == 404:
                return None
            if response.status >= 400:
                raise EngineUnavailable(f"GET {path}: {response.status}")
            data = response.read(max_bytes + 1)
            return None if len(data) > max_bytes else data
        finally:
            response.close()

    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        found = self.get_json("/containers/json", {"filters": json.dumps({"label": labels, "status": ["running"]})})
        return list(found or [])

    def inspect(self, container: str) -> dict[str, Any] | None:
        found = self.get_json(f"/containers/{urllib.parse.quote(container)}/json")
        return dict(found) if found else None

    def events(self, labels: list[str], since: int | None, read_timeout: float = 60.0) -> Iterator[dict[str, Any]]:
        """Container events for ``labels``, one dict per line, until the stream ends or goes quiet for
        ``read_timeout`` (then the caller reconnects with ``since``)."""
        params: dict[str, Any] = {"filters": json.dumps({"type": ["container"], "label": labels})}
        if since is not None:
            params["since"] = str(since)
        response = self._get("/events", params, read_timeout)
        try:
            if response.status >= 400:
                raise EngineUnavailable(f"GET /events: {response.status}")
            while True:
                try:
                    line = response.readline(65536)
                except (TimeoutError, OSError):
                    return
                if not line:
                    return
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
        finally:
            response.close()
