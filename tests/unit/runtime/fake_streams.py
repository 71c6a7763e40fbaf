"""The streamed parts of the fake engine (``fake_docker``): HTTP answers whose bodies the runtime must bound (archive
reads, log tails), the event stream, and the preview's dev server. Each keeps count of what it served, so a test can
prove that a 64 GB phase file was never read, not merely that the read returned.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class _Body:
    """A response body read with ``raw.read(n)``: ``head`` then ``filler`` bytes for ``size`` more (never held in
    memory: a sparse 64 GB file is a number here, as it is to the engine that streams it)."""

    def __init__(self, head: bytes, size: int = 0, filler: bytes = b"\0") -> None:
        self._head = io.BytesIO(head)
        self._left = size
        self._filler = filler
        self.served = 0

    def read(self, amount: int = -1) -> bytes:
        chunk = self._head.read(amount if amount >= 0 else None)
        if amount < 0 or len(chunk) < amount:
            more = min(self._left, (amount - len(chunk)) if amount >= 0 else self._left)
            self._left -= more
            chunk += (self._filler * (more // len(self._filler) + 1))[:more]
        self.served += len(chunk)
        return chunk


@dataclass
class FakeResponse:
    status_code: int
    headers: dict[str, str]
    raw: _Body
    closed: bool = False

    def close(self) -> None:
        self.closed = True


def archive_response(path: str, content: bytes | None, *, size: int | None = None, mode: int = 0o644,
                     mtime: str = "2025-03-01T09:00:00Z") -> FakeResponse:
    """``GET /containers/{id}/archive``: a tar of one entry, its stat in the header. ``size`` larger than ``content``
    stands for a sparse file of that size (zeros after the content)."""
    name = path.rsplit("/", 1)[-1]
    content = content or b""
    total = len(content) if size is None else size
    stat = {"name": name, "size": total, "mode": mode, "mtime": mtime, "linkTarget": ""}
    header = {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()}
    info = tarfile.TarInfo(name)
    info.size = total
    head = info.tobuf(format=tarfile.GNU_FORMAT) + content
    return FakeResponse(200, header, _Body(head, size=total - len(content)))


LOG_LINE_MAX = 16 * 1024
"""The engine splits a longer line into messages of this size (partial messages), each its own log entry."""


def log_messages(output: bytes) -> list[bytes]:
    messages = []
    for line in output.splitlines(keepends=True):
        messages.extend(line[i: i + LOG_LINE_MAX] for i in range(0, len(line), LOG_LINE_MAX))
    return messages


def logs_response(output: bytes, tail: int) -> FakeResponse:
    """``GET /containers/{id}/logs``: the last ``tail`` messages as the engine's multiplexed frames (stream 1)."""
    lines = log_messages(output)[-tail:]
    frames = b"".join(b"\x01\0\0\0" + struct.pack(">I", len(line)) + line for line in lines)
    return FakeResponse(200, {}, _Body(frames))


class EventStream:
    """``GET /events``: blocks for the next event until closed, like the engine's (which has no timeout)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._next = log.position()
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        with self._log.condition:
            while not self._closed:
                event = self._log.at(self._next)
                if event is not None:
                    self._next += 1
                    return event
                self._log.condition.wait(0.5)
        raise StopIteration

    def close(self) -> None:
        with self._log.condition:
            self._closed = True
            self._log.condition.notify_all()


@dataclass
class EventLog:
    condition: threading.Condition = field(default_factory=threading.Condition)
    events: list[dict[str, Any]] = field(default_factory=list)
    silent: bool = False
    """A black-holed host: nothing arrives, nothing ends."""
    streams: list[EventStream] = field(default_factory=list)

    def emit(self, kind: str, action: str, actor: str, attributes: dict[str, str]) -> None:
        with self.condition:
            self.events.append({"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attributes},
                                "time": int(time.time()), "timeNano": time.time_ns()})
            self.condition.notify_all()

    def position(self) -> int:
        with self.condition:
            return len(self.events)

    def at(self, index: int) -> dict[str, Any] | None:
        if self.silent or index >= len(self.events):
            return None
        return self.events[index]

    def end_all(self) -> None:
        """The engine restarted: every open stream ends."""
        with self.condition:
            for stream in self.streams:
                stream.close()
            self.streams.clear()


class DevServer:
    """The preview's dev server: a real HTTP server on the host address, so the runtime's readiness probe is the
    real one. ``mode``: ``ready`` (200), ``starting`` (503), ``trickle`` (a byte a second, never a full line)."""

    def __init__(self, address: str, state: Any) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if state.trickle:
                    for byte in b"HTTP/1.1 200 OK\r\n"[:-2]:  # never the end of the status line
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(1.0)
                    return
                self.send_response(200 if state.ready else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def no_answer(what: str, seconds: float) -> requests.exceptions.RequestException:
    """What docker-py raises when a host drops packets: the connection or the read times out."""
    return requests.exceptions.ConnectTimeout(f"{what}: timed out after {seconds:.1f} s")


def refused(host: str) -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(f"{host}: connection refused")
