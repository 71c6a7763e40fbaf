"""What every fake API server shares: a loopback HTTP/1.1 server on its own thread, JSON replies with
extra headers, whole-body reads, and injected faults (a proxy or server failing in front of the API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from json_http import JsonHandler


class FakeHandler(JsonHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def read_body(self) -> bytes:
        """Read the whole body first: on a kept-alive connection an unread body corrupts the next request."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """``body``: JSON-able, raw ``bytes`` (to fake a broken proxy), or None (no content)."""
        data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Fault:
    status: int
    body: Any
    times: int
    method: str | None
    path_contains: str | None
    headers: dict[str, str]


@dataclass
class Faults:
    """Answers to give instead of the API's, for the next matching requests."""

    pending: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, status: int, body: Any = None, *, times: int = 1, method: str | None = None,
               path_contains: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        with self.lock:
            self.pending.append(Fault(status, body, times, method, path_contains, dict(headers or {})))

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.pending:
                if fault.times > 0 and fault.method in (None, method) and (
                        fault.path_contains is None or fault.path_contains in path):
                    fault.times -= 1
                    return fault
            return None


class LoopbackServer:
    """``handler`` served on 127.0.0.1 (``port`` 0: a free one); ``url`` ends with ``path_prefix``."""

    def __init__(self, handler: type[FakeHandler], *, port: int = 0, path_prefix: str = "/v1",
                 name: str = "fake-api") -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._path_prefix = path_prefix
        self._thread = threading.Thread(target=self.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path_prefix}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
