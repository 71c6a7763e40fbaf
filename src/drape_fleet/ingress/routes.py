"""Which previews on this host the ingress routes to, derived from the engine (the system of record): the
runtime's labels (owner, kind, workspace, port, framework), the container's address on its preview network, and
whether it is ready. Standard library only (shipped to the host with the gate).

Ready: for the templates (which write the phase file's ``ready`` once the start page is compiled), when the last
line of ``/drape/phase`` says so; for other images (the lab's tiny preview), when the dev server's port accepts a
connection, the runtime's own rule for them today. A template's supervisor also logs each phase on its stderr
(``drape-preview: <phase>``): while that says anything but ``ready`` the phase file is not read (a read through
the engine's archive endpoint costs it ~45 ms of CPU, and pending previews are rechecked twice a second).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drape_fleet.ingress.links import host_label

OWNER, KIND, WORKSPACE, USER, PORT, FRAMEWORK = (
    "drape.owner", "drape.kind", "drape.workspace", "drape.user", "drape.port", "drape.framework")
KIND_PREVIEW = "preview"
PHASE_FILE = "/drape/phase"


@dataclass(frozen=True)
class Route:
    label: str
    workspace: str
    user: str
    container: str
    address: str
    port: int
    framework: str
    ready: bool

    @property
    def upstream(self) -> str:
        return f"{self.address}:{self.port}"


def joined_container(inspected: Mapping[str, Any]) -> str | None:
    """The network holder whose namespace a preview joined (``container:<id>``), if it did (pure)."""
    mode = str((inspected.get("HostConfig") or {}).get("NetworkMode") or "")
    return mode.removeprefix("container:") if mode.startswith("container:") else None


def route_of(inspected: Mapping[str, Any], owner: str, holder: Mapping[str, Any] | None = None) -> Route | None:
    """A running preview of ``owner`` as a (not yet ready) route; None for anything else (pure). A preview that
    joined a network holder's namespace (the runtime's spare networks) has the holder's address: pass ``holder``."""
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    state = inspected.get("State") or {}
    if labels.get(OWNER) != owner or labels.get(KIND) != KIND_PREVIEW or not state.get("Running"):
        return None
    source = holder if joined_container(inspected) else inspected
    networks = ((source or {}).get("NetworkSettings") or {}).get("Networks") or {}
    addresses = [str(n.get("IPAddress")) for n in networks.values() if n.get("IPAddress")]
    try:
        port = int(labels.get(PORT, ""))
        workspace = str(labels[WORKSPACE])
    except (KeyError, ValueError):
        return None
    if not addresses:
        return None
    return Route(host_label(workspace), workspace, str(labels.get(USER, "")), str(inspected.get("Id", "")),
                 addresses[0], port, str(labels.get(FRAMEWORK, "")), False)


SUPERVISOR_MARK = "drape-preview: "


def logged_phase(log: bytes | None) -> str | None:
    """The phase a template's supervisor last logged, from the engine's log stream (multiplexed: 8-byte frame
    headers, stream kind then size); None when it logged none (or the stream is not what it should be)."""
    if not log:
        return None
    payload, offset = [], 0
    while offset + 8 <= len(log) and log[offset] in (1, 2) and log[offset + 1: offset + 4] == b"\0\0\0":
        size = struct.unpack(">I", log[offset + 4: offset + 8])[0]
        payload.append(log[offset + 8: offset + 8 + size])
        offset += 8 + size
    for line in reversed(b"".join(payload).decode(errors="replace").splitlines()):
        if line.startswith(SUPERVISOR_MARK):
            return line.removeprefix(SUPERVISOR_MARK).strip()
    return None


def phase_says_ready(text: str) -> bool:
    lines = [line.strip() for line in text.strip().splitlines()]
    return bool(lines) and lines[-1] == "ready"


def port_answers(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_ready(route: Route, phase_frameworks: frozenset[str], read_phase: Callable[[str], str | None]) -> bool:
    if route.framework in phase_frameworks:
        return phase_says_ready(read_phase(route.container) or "")
    return port_answers(route.address, route.port)
