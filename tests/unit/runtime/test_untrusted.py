"""Issue 8, item 1: reads from a preview are bounded in total time and bytes, and what a preview says is made safe
before it lands in a status or an error. Against the fake engines, whose streams count every byte they serve, and
real HTTP servers on loopback."""

from __future__ import annotations

import socket
import threading
import time

from fake_streams import _Body
from runtime_testkit import World, eventually

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.untrusted import LOG_READ_MAX_BYTES, TEXT_MAX_CHARS, _demultiplex, http_status, safe_text

GB64 = 64 * 1024**3
MIB = 1024 * 1024


def test_safe_text_keeps_one_printable_line_of_bounded_length() -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07red \x1b[31mALERT\x1b[0m\u202egnp.exe\u200b\x00\r\nnext\tline " + "x" * 10_000
    text = safe_text(hostile)
    assert text.startswith("red ALERT gnp.exe next line x")
    assert len(text) == TEXT_MAX_CHARS and text.endswith("…")
    assert all(ch.isprintable() for ch in text)
    assert safe_text(b"\xff\xfebroken utf-8") == "\ufffd\ufffdbroken utf-8"


def test_log_frames_are_read_even_when_cut_off_by_the_byte_cap() -> None:
    frames = b"\x01\0\0\0\0\0\0\x03abc" + b"\x02\0\0\0\0\0\0\x05de"  # the second frame cut short
    assert _demultiplex(frames) == b"abcde"
    assert _demultiplex(b"plain tty output") == b"plain tty output"


def trickling_server() -> tuple[socket.socket, threading.Event]:
    """A server that answers one byte a second and never ends its status line."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return

            def trickle(conn: socket.socket = connection) -> None:
                with conn:
                    for byte in b"HTTP/1.1 200 OK":
                        if stop.wait(1.0):
                            return
                        try:
                            conn.sendall(bytes([byte]))
                        except OSError:
                            return

            threading.Thread(target=trickle, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, stop


def test_an_http_probe_is_bounded_in_total_time() -> None:
    server, stop = trickling_server()
    try:
        started = time.monotonic()
        assert http_status("127.0.0.1", server.getsockname()[1], budget=0.5) is None
        assert time.monotonic() - started < 1.0  # the trickle would take 15 s; a per-read timeout never fires
    finally:
        stop.set()
        server.close()


def test_a_trickling_dev_server_holds_neither_start_nor_status_nor_previews(world: World) -> None:
    ours, theirs = world.runtime(preview_read_timeout_s=0.5), world.runtime(preview_read_timeout_s=0.5)
    status = ours.start("trickle", "u1", "tiny", wait=5)
    container = world.hosts[status.host or ""].container("drape-pv-trickle")
    container.trickle = True  # the tenant's server now sends its status line a byte a second
    for call in (lambda: theirs.start("trickle", "u1", "tiny"), lambda: theirs.status("trickle"),
                 lambda: theirs.previews(), lambda: world.runtime(preview_read_timeout_s=0.5).status("trickle")):
        started = time.monotonic()
        call()
        assert time.monotonic() - started < 3.0


def test_a_sparse_64_gb_phase_file_never_reaches_the_backend(world: World) -> None:
    runtime = world.runtime()
    host = world.hosts["ax1"]
    host.ready_on_start = False
    runtime.start("sparse", "u1", "tiny")
    container = eventually(lambda: next(iter(host.named("drape-pv-sparse")), None))
    container.special["/drape/phase"] = (GB64, 0o644)  # `truncate -s 64G /drape/phase` by the tenant
    time.sleep(1.5)  # the follower reads the phase file every half second
    status = runtime.status("sparse")
    assert status is not None and status.phase is Phase.STARTING  # unknown phase, not a crash, not "failed"
    reads = [body for body in host.served if isinstance(body, _Body)]
    assert reads and max(body.served for body in reads) <= 64 * 1024  # nothing of it read, or a few KiB at most
    container.special["/drape/phase"] = (0, 1 << 31)  # a directory now
    container.ready = True
    assert runtime.wait_ready("sparse", 5).phase is Phase.READY


def test_what_a_failing_template_says_is_made_safe_and_short(world: World) -> None:
    runtime = world.runtime()
    host = world.hosts["ax1"]
    for fake in world.hosts.values():
        fake.ready_on_start = False
    runtime.start("loud", "u1", "tiny")
    runtime.start("logs", "u1", "tiny")
    loud = eventually(lambda: next(iter(host.named("drape-pv-loud")), None))
    loud.set_phase("failed: \x1b[31mboom\x1b[0m \u202e" + "y" * 3000)
    status = runtime.wait_ready("loud", 5)
    assert status.phase is Phase.FAILED and status.error is not None
    assert status.error.startswith("boom y") and len(status.error) <= TEXT_MAX_CHARS
    logs = eventually(lambda: next(iter(world.hosts["ax2"].named("drape-pv-logs")), None))
    logs.logs = b"start\n" + b"\x1b[2J" + b"z" * (8 * MIB) + b"\nError: \x07Cannot find module 'vite'\n"
    logs.stop(1)
    status = runtime.wait_ready("logs", 5)
    assert status.phase is Phase.FAILED and status.error is not None
    assert len(status.error) <= 40 + TEXT_MAX_CHARS and all(ch.isprintable() for ch in status.error)
    assert status.error.endswith("Error: Cannot find module 'vite'")
    served = [body.served for body in world.hosts["ax2"].served if isinstance(body, _Body)]
    assert max(served) <= LOG_READ_MAX_BYTES  # the 8 MiB line was not read whole
