"""Is a preview ready? Its phases, and the probes that tell them apart.

``starting`` until the template's entrypoint reports progress in its phase file (``installing``,
``compiling``, or ``failed: why``); ``ready`` only when the dev server answers HTTP on the host's published
port: the probe goes where the backend's own requests will go (host address and published port, from the
host side), so "ready" means "reachable", not "the container started".
"""

from __future__ import annotations

import enum
import http.client
import io
import tarfile

from docker.errors import NotFound

from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.spec import PHASE_FILE


class Phase(enum.StrEnum):
    QUEUED = "queued"
    PLACING = "placing"
    STARTING = "starting"
    INSTALLING = "installing"
    COMPILING = "compiling"
    READY = "ready"
    FAILED = "failed"
    LOST = "lost"
    """Its host stopped answering; the next ``start`` places the preview on a surviving host."""

    @property
    def active(self) -> bool:
        """Still on its way to ready (a new start for the workspace joins it instead of starting over)."""
        return self in (Phase.QUEUED, Phase.PLACING, Phase.STARTING, Phase.INSTALLING, Phase.COMPILING)

    @property
    def final(self) -> bool:
        return self in (Phase.READY, Phase.FAILED, Phase.LOST)


def http_answers(address: str, port: int, path: str = "/", timeout: float = 2.0) -> bool:
    """True when something answers HTTP at ``address:port`` with a status below 500."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "drape-fleet-readiness"})
        response = connection.getresponse()
        response.read(1024)
        return response.status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def parse_phase(text: str) -> tuple[Phase | None, str | None]:
    """The phase file's content: ``installing``, ``compiling`` or ``failed: why`` (anything else: unknown)."""
    line = text.strip().splitlines()[-1].strip() if text.strip() else ""
    if line == "installing":
        return Phase.INSTALLING, None
    if line == "compiling":
        return Phase.COMPILING, None
    if line.startswith("failed"):
        return Phase.FAILED, line.partition(":")[2].strip() or "the dev server failed to start"
    return None, None


def read_phase(engine: Engine, container_id: str) -> tuple[Phase | None, str | None]:
    def fetch(api: object) -> bytes:
        stream, _ = api.get_archive(container_id, PHASE_FILE)  # type: ignore[attr-defined]
        return b"".join(stream)

    try:
        data = engine.call(fetch, "read phase")
    except NotFound:
        return None, None
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            text = extracted.read(4096).decode(errors="replace") if extracted is not None else ""
    except tarfile.TarError:
        return None, None
    return parse_phase(text)
