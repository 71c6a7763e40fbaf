"""Last activity: the one thing about a preview that changes after it is created.

Where it lives, and why: in the preview container itself, as the modification time of a root-owned file
(``/.drape-activity``) written through the engine's archive endpoint (``PUT /containers/{id}/archive``) and
read back with ``HEAD /containers/{id}/archive`` (the engine returns the file's stat in a header; no body,
no exec, no process started in the container).

* Shared: every backend process, on any machine, reaches the same engines, so all of them see one value;
  nothing else (no database, no shared disk) has to exist or stay up.
* Tied to the preview's life: a new preview's ``drape.created`` label counts as its first activity, and the
  stamp is removed with it, so there is nothing to garbage-collect and nothing to go stale when a host dies.
* Out of the hot path's way: an activity ping only updates an in-memory buffer; a background flush writes
  each dirty workspace every ``activity_flush_s`` to *whatever container holds the workspace now* (listed at
  flush time: another process may have placed it again), tombstones included, so a reaper at work sees it.
  A hot start writes through only when this process has not stamped that container for a while (see
  ``service``): a write costs about 20 times an inspect on the engine.
* Unknown is active: a stamp that cannot be read raises, and no caller sends a preview toward deletion on it.
* Tenant-proof enough: the file is written as root (mode 0644) in ``/``, which the preview's unprivileged
  user cannot write, so a tenant cannot forge activity to keep a preview alive.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
from datetime import UTC, datetime
from typing import Any

import docker

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError
from drape_fleet.runtime.spec import ACTIVITY_FILE


def stamp_archive(moment: datetime) -> bytes:
    """A tar holding ``.drape-activity`` whose mtime (and content) is ``moment``. Pure."""
    content = (L.format_time(moment) + "\n").encode()
    info = tarfile.TarInfo(ACTIVITY_FILE.lstrip("/"))
    info.size = len(content)
    info.mtime = int(moment.timestamp())
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def parse_stat_header(header: str | None) -> datetime | None:
    """The mtime from an ``X-Docker-Container-Path-Stat`` header (base64 JSON, RFC 3339 with nanoseconds)."""
    if not header:
        return None
    try:
        stat = json.loads(base64.b64decode(header))
        text = str(stat["mtime"])
    except (ValueError, KeyError, TypeError):
        return None
    return parse_rfc3339(text)


def parse_rfc3339(text: str) -> datetime | None:
    text = text.replace("Z", "+00:00")
    if "." in text:  # Python reads at most microseconds: cut nanoseconds down
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits):]
        text = f"{head}.{digits[:6]}{tail}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def write_stamp(engine: Engine, container_id: str, moment: datetime) -> None:
    data = stamp_archive(moment)
    engine.call(lambda api: api.put_archive(container_id, "/", data), "write activity")


def read_stamp(engine: Engine, container_id: str) -> datetime | None:
    """The last activity written to a container; None when it was never touched (no stamp file) or is gone.
    Anything else (no answer, an error, a header that does not parse) raises: the activity is *unknown*, and
    every caller treats unknown as active. A failed read never sends a preview toward deletion."""

    def head(api: docker.APIClient) -> Any:
        url = api._url("/containers/{0}/archive", container_id)  # type: ignore[attr-defined]
        return api.head(url, params={"path": ACTIVITY_FILE}, timeout=api.timeout)

    response = engine.call(head, "read activity")
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise EngineError(engine.name, response.status_code, f"reading the activity of {container_id[:12]}")
    moment = parse_stat_header(response.headers.get("X-Docker-Container-Path-Stat"))
    if moment is None:
        raise EngineError(engine.name, None, f"the activity stamp of {container_id[:12]} does not parse")
    return moment


BUFFER_LIMIT = 100_000
"""Workspaces remembered per table: ids are validated, and entries older than the persistence window go, so the
limit is a last line of defence, never reached by real users."""


class ActivityBuffer:
    """In-memory activity pings, flushed in the background, and what this process last wrote where. Thread-safe;
    ``note`` is O(1); every table is bounded: past ``BUFFER_LIMIT`` entries, those older than ``keep_s`` go, then the
    oldest."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, keep_s: float = 3600.0) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._dirty: dict[str, datetime] = {}
        self._seen: dict[str, datetime] = {}
        self._written: dict[str, tuple[str, datetime]] = {}

    def note(self, workspace: str, moment: datetime | None = None) -> None:
        moment = moment or self._clock.now()
        with self._lock:
            self._dirty[workspace] = max(moment, self._dirty.get(workspace, moment))
            self._seen[workspace] = max(moment, self._seen.get(workspace, moment))
            if len(self._seen) > BUFFER_LIMIT:
                self._prune()

    def _prune(self) -> None:
        horizon = self._clock.now().timestamp() - self._keep_s
        for table in (self._seen, self._dirty):
            for workspace in [w for w, t in table.items() if t.timestamp() < horizon]:
                del table[workspace]
            while len(table) > BUFFER_LIMIT:
                del table[min(table, key=lambda w: table[w])]
        for workspace in [w for w, (_, t) in self._written.items() if t.timestamp() < horizon]:
            del self._written[workspace]
        while len(self._written) > BUFFER_LIMIT:
            del self._written[next(iter(self._written))]

    def last_seen(self, workspace: str) -> datetime | None:
        """The latest ping this process received (flushed or not)."""
        with self._lock:
            return self._seen.get(workspace)

    def wrote(self, workspace: str, container_id: str, moment: datetime) -> None:
        """This process stamped ``container_id`` with ``moment``."""
        with self._lock:
            known = self._written.get(workspace)
            if known is None or known[0] != container_id or known[1] < moment:
                self._written[workspace] = (container_id, moment)
            if len(self._written) > BUFFER_LIMIT:
                self._prune()

    def last_written(self, workspace: str, container_id: str) -> datetime | None:
        """The newest stamp this process wrote on ``container_id`` (None: none, or on another container)."""
        with self._lock:
            known = self._written.get(workspace)
        return known[1] if known is not None and known[0] == container_id else None

    def take(self) -> dict[str, datetime]:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        return dirty

    def put_back(self, pending: dict[str, datetime]) -> None:
        """Return pings a flush could not write, unless a newer ping arrived meanwhile."""
        with self._lock:
            for workspace, moment in pending.items():
                if workspace not in self._dirty or self._dirty[workspace] < moment:
                    self._dirty[workspace] = moment

    def forget(self, workspace: str) -> None:
        with self._lock:
            self._dirty.pop(workspace, None)
            self._seen.pop(workspace, None)
            self._written.pop(workspace, None)

    def sizes(self) -> tuple[int, int, int]:
        with self._lock:
            return len(self._dirty), len(self._seen), len(self._written)
