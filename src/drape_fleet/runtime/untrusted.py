"""Everything the runtime reads from inside a preview: bounded in total time and in bytes, and made safe as text.

A preview runs its user's code, so whatever comes out of it is hostile: its phase file (the user can replace it
with a sparse 64 GB file, a directory, a named pipe or a symlink), its log output (lines of megabytes, terminal
escapes, bidirectional-text overrides), its dev server (which may answer one byte a second, or never finish its
status line). Every read here has a deadline for the whole read, not per socket read, and a byte cap; every text
that reaches a status, an error or a log goes through ``safe_text`` first.

The phase file and the logs come through the preview's engine (``engines.open_stream``: the seam owns the
connection, this module owns the limits); the HTTP probe goes to the preview's published port from the backend's
side, as the backend's own requests will.
"""

from __future__ import annotations

import io
import re
import socket
import struct
import tarfile
import time

from docker.errors import NotFound

from drape_fleet.runtime.engines import ApiClient, Engine, read_limited, stat_header

PHASE_MAX_BYTES = 4096
"""The phase file is one short line; anything larger is not read at all."""
LOG_READ_MAX_BYTES = 128 * 1024
"""The engine splits log lines at 16 KiB, so a tail of five lines is at most about 80 KiB: read no more."""
TEXT_MAX_CHARS = 240
"""What a status or an error carries of a preview's own words."""
STATUS_LINE_MAX_BYTES = 512

_TAR_OVERHEAD = 3 * 512 + 511
"""A one-file tar: its header, the padding of its content, and the two empty blocks at the end."""
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
"""ANSI/VT escape sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks), and two-byte ones."""
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-5][0-9]{2})(?: |\r|$)")
_FILE_TYPE_BITS = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
"""Go's ``os.FileMode`` type bits in the engine's stat header (directory, symlink, device, pipe, socket,
character device, irregular): a regular file has none of them."""


def safe_text(raw: bytes | str, limit: int = TEXT_MAX_CHARS) -> str:
    """``raw`` as one line of printable text at most ``limit`` characters long: invalid UTF-8 replaced, escape
    sequences removed, every other control or format character (bidi overrides, zero-width joiners, NUL...)
    turned into a space, runs of whitespace collapsed."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = _ESCAPES.sub("", text[: limit * 8])  # escapes are removed, so look a little further than the limit
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------
# The dev server: one HTTP request, the status line, within one deadline
# ---------------------------------------------------------------------------------------------------

def http_status(address: str, port: int, path: str = "/", *, budget: float) -> int | None:
    """The status code the server at ``address:port`` answers ``GET path`` with, or None (no answer, not HTTP,
    or not within ``budget`` seconds in total: connecting, sending and reading the status line together).

    Only the status line is read (at most ``STATUS_LINE_MAX_BYTES``); headers and body never are. ``http.client``
    cannot do this: its timeout applies to each socket read, so a server sending a byte a second holds it
    forever."""
    deadline = time.monotonic() + budget
    request = (f"GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nUser-Agent: drape-fleet-readiness\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n").encode()
    received = b""
    try:
        with socket.create_connection((address, port), timeout=budget) as sock:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(request)
            while b"\n" not in received and len(received) < STATUS_LINE_MAX_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(STATUS_LINE_MAX_BYTES - len(received))
                if not chunk:
                    break
                received += chunk
    except OSError:
        return None
    match = _STATUS_LINE.match(received)
    return int(match.group(1)) if match else None


def http_answers(address: str, port: int, path: str = "/", *, budget: float) -> bool:
    """Something answers HTTP at ``address:port`` with a status below 500, within ``budget`` seconds."""
    status = http_status(address, port, path, budget=budget)
    return status is not None and status < 500


# ---------------------------------------------------------------------------------------------------
# Files and logs, through the engine
# ---------------------------------------------------------------------------------------------------

def read_small_file(engine: Engine, container_id: str, path: str, *, max_bytes: int, budget: float) -> bytes | None:
    """The content of ``path`` in the container if it is a regular file of at most ``max_bytes``; None when it is
    absent, anything but a regular file, or larger (then nothing of it is read: the engine's stat header says so
    before the body). The whole read takes at most ``budget`` seconds."""

    def fetch(api: ApiClient) -> bytes | None:
        deadline = time.monotonic() + budget
        with api.open_stream("/containers/{0}/archive", container_id, params={"path": path},
                             timeout=budget) as response:
            stat = stat_header(response)
            size, mode = int(stat.get("size", -1)), int(stat.get("mode", 0))
            if mode & _FILE_TYPE_BITS or not 0 <= size <= max_bytes:
                return None
            archive = read_limited(response, max_bytes + _TAR_OVERHEAD, deadline)
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
                member = tar.next()
                if member is None or not member.isreg() or member.size > max_bytes:
                    return None
                extracted = tar.extractfile(member)
                return extracted.read(max_bytes) if extracted is not None else None
        except tarfile.TarError:
            return None

    try:
        return engine.call(fetch, f"read {path}")
    except NotFound:
        return None


def log_lines(engine: Engine, container_id: str, *, lines: int, budget: float, stdout: bool = True) -> list[str]:
    """The last ``lines`` lines of the container's output (stderr, and stdout unless ``stdout=False``), each made
    safe; at most ``LOG_READ_MAX_BYTES`` read in ``budget`` seconds."""

    def fetch(api: ApiClient) -> bytes:
        deadline = time.monotonic() + budget
        params = {"stdout": int(stdout), "stderr": 1, "tail": lines, "follow": 0, "timestamps": 0}
        with api.open_stream("/containers/{0}/logs", container_id, params=params, timeout=budget) as response:
            return read_limited(response, LOG_READ_MAX_BYTES, deadline)

    data = engine.call(fetch, "read logs")
    text = _demultiplex(data).decode("utf-8", "replace")
    return [line for line in (safe_text(raw, TEXT_MAX_CHARS // 2) for raw in text.splitlines()[-lines:]) if line]


def log_tail(engine: Engine, container_id: str, *, lines: int = 5, budget: float) -> str:
    """The last ``lines`` lines of the container's output (stdout and stderr), each made safe, joined by `` | ``;
    at most ``LOG_READ_MAX_BYTES`` read in ``budget`` seconds."""
    joined = " | ".join(log_lines(engine, container_id, lines=lines, budget=budget))
    if not joined:
        return "(no output)"
    # The end is what explains an exit: when it is too long, the start goes.
    return joined if len(joined) <= TEXT_MAX_CHARS else "…" + joined[-(TEXT_MAX_CHARS - 1):]


def _demultiplex(data: bytes) -> bytes:
    """The payload of the engine's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, size); a
    stream that is not framed (a TTY container) is returned as it is. A frame cut off by the byte cap keeps
    what arrived."""
    out: list[bytes] = []
    offset = 0
    while offset + 8 <= len(data):
        kind, size = data[offset], struct.unpack(">I", data[offset + 4: offset + 8])[0]
        if kind not in (0, 1, 2) or data[offset + 1: offset + 4] != b"\0\0\0":
            return data if offset == 0 else b"".join(out)
        out.append(data[offset + 8: offset + 8 + size])
        offset += 8 + size
    return b"".join(out)


def last_line(content: bytes | None) -> str:
    """The last non-empty line of a small file (the phase file's current state), as text."""
    if not content:
        return ""
    lines = [line.strip() for line in content.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""
