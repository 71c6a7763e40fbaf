"""A browser on an ops machine reaching Prometheus and Alertmanager, which listen on the monitoring server's
127.0.0.1 only.

The fleet's sshd allows no port forwarding (``AllowTcpForwarding no``: ``ssh -L`` is refused), so this tunnel
forwards nothing through sshd: it listens on the ops machine's 127.0.0.1 and, for each connection, runs
``busybox nc 127.0.0.1 PORT`` on the server in an ordinary SSH session (the same pinned key, user and sudo-less
login ops already have; busybox is on every host, base deploy), copying bytes both ways. One multiplexed SSH
connection carries the sessions, so pages load quickly.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from drape_fleet.monitoring.plan import MonitoringPlan
from drape_fleet.ssh import Option, SshTarget

COPY_CHUNK = 65536


@dataclass(frozen=True)
class Forward:
    name: str
    local_port: int
    remote_port: int


def session_argv(target: SshTarget, remote_port: int, control_path: Path) -> list[str]:
    """The SSH session that carries one connection (pure)."""
    multiplex: Sequence[Option] = (("ControlMaster", "auto"), ("ControlPath", str(control_path)),
                                   ("ControlPersist", "60"))
    return [*target.ssh_args(multiplex), "-T", target.hostname, f"exec busybox nc 127.0.0.1 {remote_port}"]


def _into_process(connection: socket.socket, stdin: IO[bytes]) -> None:
    try:
        while data := connection.recv(COPY_CHUNK):
            stdin.write(data)
            stdin.flush()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _out_of_process(stdout: IO[bytes], connection: socket.socket) -> None:
    try:
        while data := os.read(stdout.fileno(), COPY_CHUNK):
            connection.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_WR)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, argv: list[str]) -> None:
        self.argv = argv
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        process = subprocess.Popen(self.server.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        assert process.stdin is not None and process.stdout is not None
        upstream = threading.Thread(target=_into_process, args=(self.request, process.stdin), daemon=True)
        upstream.start()
        _out_of_process(process.stdout, self.request)
        upstream.join(timeout=5)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Tunnel:
    """``with Tunnel(target, forwards): ...`` serves every forward until the block ends."""

    def __init__(self, target: SshTarget, forwards: Sequence[Forward]) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="drape-tunnel-")
        control = Path(self._directory.name) / "control"
        self._close_master = [*target.ssh_args((("ControlPath", str(control)),)), "-O", "exit", target.hostname]
        self.forwards = tuple(forwards)
        self._servers = [_Server(f.local_port, session_argv(target, f.remote_port, control)) for f in forwards]
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]

    def __enter__(self) -> Tunnel:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        subprocess.run(self._close_master, capture_output=True, timeout=10, check=False)
        self._directory.cleanup()


def forwards(plan: MonitoringPlan, prometheus_port: int | None = None,
             alertmanager_port: int | None = None) -> tuple[Forward, Forward]:
    """Local ports default to the server's own, which the UIs' links (their external URLs) assume."""
    settings = plan.settings
    return (Forward("prometheus", prometheus_port or settings.prometheus_port, settings.prometheus_port),
            Forward("alertmanager", alertmanager_port or settings.alertmanager.port, settings.alertmanager.port))


def places(prometheus: Forward, alertmanager: Forward) -> tuple[tuple[str, str], ...]:
    """Where to look, through the tunnel (pure)."""
    base, am = f"http://localhost:{prometheus.local_port}", f"http://localhost:{alertmanager.local_port}"
    return (
        ("Fleet console (hosts, volumes, RAID, drives, alerts)", f"{base}/consoles/drape-fleet.html"),
        ("Previews and the cutover comparison", f"{base}/consoles/drape-cutover.html"),
        ("Alert rules and what fires", f"{base}/alerts"),
        ("Scrape targets", f"{base}/targets"),
        ("Ad-hoc queries and graphs", f"{base}/graph"),
        ("Alertmanager (silences, notifications)", f"{am}/"),
    )
