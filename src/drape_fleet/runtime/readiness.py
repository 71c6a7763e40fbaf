"""Is a preview ready? Its phases, and the probes that tell them apart.

``starting`` until the template's entrypoint reports progress in its phase file (``installing``,
``compiling``, or ``failed: why``); ``ready`` only when the dev server answers HTTP on the host's published
port and, for templates, the phase file says ``ready`` (its start page is compiled: ``is_ready``). The probe goes
where the backend's own requests will go (host address and published port, from the host side), so "ready"
means "reachable", not "the container started". Both reads come from the preview, so both are bounded
(``untrusted``): the phase file in bytes and time, the probe in total time, and the reason a template gives for
failing is made safe before it becomes an error.
"""

from __future__ import annotations

import enum

from drape_fleet.config.runtime import Framework
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.spec import PHASE_FILE
from drape_fleet.runtime.untrusted import (
    PHASE_MAX_BYTES,
    http_answers,
    last_line,
    log_lines,
    read_small_file,
    safe_text,
)

__all__ = ["Phase", "http_answers", "is_ready", "parse_phase", "phase_hint", "read_phase"]


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


def parse_phase(text: str) -> tuple[Phase | None, str | None]:
    """The phase file's last line: ``installing``, ``compiling`` or ``failed: why`` (anything else: unknown). The
    reason is the tenant's text: made safe and short."""
    line = text.strip().splitlines()[-1].strip() if text.strip() else ""
    if line == "installing":
        return Phase.INSTALLING, None
    if line == "compiling":
        return Phase.COMPILING, None
    if line == "ready":  # the template's own word: its start page is compiled (``is_ready`` also asks the port)
        return Phase.READY, None
    if line.startswith("failed"):
        return Phase.FAILED, safe_text(line.partition(":")[2]) or "the dev server failed to start"
    return None, None


def read_phase(engine: Engine, container_id: str, *, budget: float) -> tuple[Phase | None, str | None]:
    """The phase the template reports; (None, None) when its file is absent, not a small regular file, or unread
    within ``budget`` seconds."""
    content = read_small_file(engine, container_id, PHASE_FILE, max_bytes=PHASE_MAX_BYTES, budget=budget)
    return parse_phase(last_line(content))


def is_ready(engine: Engine, container_id: str, address: str, port: int, framework: Framework, *,
             budget: float) -> bool:
    """Ready for the user: the dev server answers HTTP on the host's published port and, for a template
    (``ready_when = "page-compiled"``), its phase file says ``ready`` (start page and assets compiled). The cheap
    probe first; the phase file is read only once the port answers."""
    if not http_answers(address, port, framework.ready_path, budget=budget):
        return False
    if framework.ready_when == "answers":
        return True
    try:
        return read_phase(engine, container_id, budget=budget)[0] is Phase.READY
    except RuntimeFailure:  # a slow engine is not a failed preview: not ready yet, asked again on the next probe
        return False


SUPERVISOR_MARK = "drape-preview: "


def phase_hint(engine: Engine, container_id: str, *, budget: float) -> Phase | None:
    """The phase a template's supervisor last logged (``drape-preview: <phase>`` on its stderr, where the dev
    server's output does not go), or None when it has logged none yet.

    A hint, not the answer: it only tells a follower when to ask ``is_ready``. Reading the log's tail costs the
    engine next to nothing; reading the phase file (an archive through the engine) costs it about 45 ms of CPU,
    measured on a lab host: too much to do every 0.2 s for every starting preview."""
    for line in reversed(log_lines(engine, container_id, lines=5, budget=budget, stdout=False)):
        if line.startswith(SUPERVISOR_MARK):
            return parse_phase(line.removeprefix(SUPERVISOR_MARK))[0]
    return None
