"""What the trusted job puts in a host's store: each source is a project's ``package.json`` (and its lockfile).

* **templates**: each template image's starter (``/opt/drape/starter``), what a preview without a repository runs;
* **popular**: one project listing ``[previews.store] popular`` (resolved to the newest matching releases);
* **projects**: the most recently started projects on the host: the ``package.json`` and ``pnpm-lock.yaml`` of
  each preview container (``/workspace/app``) and of each kept workspace volume (label ``drape.kind=workspace``,
  ``app/``), newest first, at most ``recent_projects``, each file at most ``lockfile_max_kib`` (they come from
  tenants: read as data, never run; the job installs with ``--ignore-scripts`` into a content-addressed store,
  so a hostile lockfile can add packages, never change another's).

Pure selection and manifests here; the reads go through the engine seam (``read_*``).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from docker.errors import NotFound

from drape_fleet.config.previews import StoreSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine

PROJECT_FILES = ("package.json", "pnpm-lock.yaml")
STARTER_DIR = "/opt/drape/starter"
PREVIEW_APP = "/workspace/app"
WORKSPACE_KIND = L.KIND_WORKSPACE
"""The label the runtime gives a kept workspace volume."""
JOB_LABEL = "drape.store-job"
INSTALLS = ".drape/installs.jsonl"
"""Where a preview's supervisor records each start (in its workspace): when, which install path, how long."""

Kind = Literal["template", "popular", "project"]


@dataclass(frozen=True)
class Source:
    kind: Kind
    name: str
    files: Mapping[str, bytes] = field(repr=False)
    started: str = ""
    """For projects: when it was last started (ISO 8601 UTC), the order ``select`` keeps."""

    @property
    def digest(self) -> str:
        """Same files, same packages: one fill is enough."""
        hashed = hashlib.sha256()
        for name in sorted(self.files):
            hashed.update(name.encode() + b"\0" + bytes(self.files[name]) + b"\0")
        return hashed.hexdigest()[:16]


def popular_source(specs: Sequence[str]) -> Source:
    """A project whose dependencies are the configured popular packages (``name@range`` each)."""
    dependencies: dict[str, str] = {}
    for spec in specs:
        name, _, wanted = spec.rpartition("@")
        dependencies[name] = wanted
    manifest = {"name": "drape-store-popular", "private": True, "dependencies": dict(sorted(dependencies.items()))}
    return Source("popular", "popular packages", {"package.json": (json.dumps(manifest, indent=2) + "\n").encode()})


def select(templates: Iterable[Source], popular: Source | None, projects: Iterable[Source],
           recent: int) -> list[Source]:
    """The sources of one fill: templates, the popular packages, then the ``recent`` most recently started
    projects; each set of files once (the first time it appears)."""
    newest = sorted(projects, key=lambda s: s.started, reverse=True)[:recent]
    chosen: list[Source] = []
    seen: set[str] = set()
    for source in [*templates, *([popular] if popular else []), *newest]:
        if "package.json" in source.files and source.digest not in seen:
            seen.add(source.digest)
            chosen.append(source)
    return chosen


# ---------------------------------------------------------------------------------------------------
# Reading through the engine seam
# ---------------------------------------------------------------------------------------------------

def read_small(engine: Engine, container: str, path: str, max_bytes: int) -> bytes | None:
    """A regular file's content, or None when it is missing, not a regular file, or larger than ``max_bytes``."""
    def fetch(api: Any) -> bytes | None:
        stream, stat = api.get_archive(container, path)
        if int(stat.get("size", 0)) > max_bytes:
            return None
        data = b""
        for chunk in stream:
            data += chunk
            if len(data) > max_bytes + 64 * 1024:  # the tar framing around a file of at most max_bytes
                return None
        return data

    try:
        data = engine.call(fetch, f"read {path}")
    except NotFound:
        return None
    if data is None:
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None or not member.isreg() or member.size > max_bytes:
            return None
        handle = tar.extractfile(member)
        return handle.read() if handle is not None else None


def _project_files(engine: Engine, container: str, directory: str, max_bytes: int) -> dict[str, bytes]:
    found = {}
    for name in PROJECT_FILES:
        content = read_small(engine, container, f"{directory}/{name}", max_bytes)
        if content is not None:
            found[name] = content
    return found


def read_templates(engine: Engine, images: Mapping[str, str], max_bytes: int) -> list[Source]:
    """Each template image's starter project, read from a created (never started) container of it."""
    sources = []
    for framework, image in sorted(images.items()):
        files = _starter_files(engine, image, max_bytes)
        if files:
            sources.append(Source("template", f"template {framework}", files))
    return sources


def _starter_files(engine: Engine, image: str, max_bytes: int) -> dict[str, bytes]:
    created = engine.call(lambda api: api.create_container(image, command=["true"], labels={JOB_LABEL: "read"}),
                          f"read the starter of {image}")
    try:
        return _project_files(engine, created["Id"], STARTER_DIR, max_bytes)
    finally:
        engine.call(lambda api: api.remove_container(created["Id"], force=True), "remove reader")


def read_projects(engine: Engine, owner: str, settings: StoreSettings, reader_image: str) -> list[Source]:
    """The projects started on this host: its previews (running or stopped, not yet removed) and its kept
    workspaces, each with when it was last started."""
    max_bytes = settings.lockfile_max_kib * 1024
    sources: list[Source] = []
    previews = engine.call(lambda api: api.containers(all=True, filters=L.owned_filter(owner, L.KIND_PREVIEW)),
                           "list previews")
    for found in previews:
        labels = found.get("Labels") or {}
        files = _project_files(engine, found["Id"], PREVIEW_APP, max_bytes)
        if files:
            sources.append(Source("project", f"preview {labels.get(L.WORKSPACE, found['Id'][:12])}", files,
                                  labels.get(L.CREATED, "")))
    volumes = engine.call(lambda api: api.volumes(filters=L.owned_filter(owner, WORKSPACE_KIND)),
                          "list workspaces").get("Volumes") or []
    for volume in volumes:
        sources.extend(_read_workspace(engine, volume, reader_image, max_bytes))
    return sources


def _read_workspace(engine: Engine, volume: Mapping[str, Any], image: str, max_bytes: int) -> list[Source]:
    name = str(volume["Name"])
    workspace = (volume.get("Labels") or {}).get(L.WORKSPACE, name)
    found = read_volume(engine, name, image, ["app/package.json", "app/pnpm-lock.yaml", INSTALLS], max_bytes)
    files = {path.removeprefix("app/"): data for path, data in found.items() if path.startswith("app/")}
    return [Source("project", f"workspace {workspace}", files, last_start(found.get(INSTALLS, b"")))] if files else []


def read_volume(engine: Engine, volume: str, image: str, paths: Sequence[str], max_bytes: int) -> dict[str, bytes]:
    """Small files of a volume (relative paths), read through a created, never started, container of ``image``
    that mounts it read-only."""
    created = engine.call(lambda api: api.create_container(
        image, command=["true"], labels={JOB_LABEL: "read"},
        host_config=api.create_host_config(binds=[f"{volume}:/kept:ro"])), f"read volume {volume}")
    try:
        found = {path: read_small(engine, created["Id"], f"/kept/{path}", max_bytes) for path in paths}
    finally:
        engine.call(lambda api: api.remove_container(created["Id"], force=True), "remove reader")
    return {path: data for path, data in found.items() if data is not None}


def read_only_job(engine: Engine, image: str, script: str, *, kind: str, user: str, binds: Sequence[str],
                  wait_s: float, what: str, **limits: Any) -> str:
    """Run ``script`` (sh) once in a container of ``image`` with no network, no capability and only ``binds``
    (read-only mounts), and return what it printed on stdout. The container goes however it ends."""

    def run(api: Any) -> str:
        created = api.create_container(
            image, entrypoint=["sh", "-c", script], user=user, labels={JOB_LABEL: kind}, network_disabled=True,
            host_config=api.create_host_config(binds=list(binds), network_mode="none", cap_drop=["ALL"],
                                               security_opt=["no-new-privileges:true"], **limits))
        try:
            api.start(created["Id"])
            api.wait(created["Id"], timeout=wait_s)
            return str(api.logs(created["Id"], stderr=False).decode(errors="replace"))
        finally:
            api.remove_container(created["Id"], force=True)

    return str(engine.call(run, what, timeout=wait_s + 60))


def last_start(installs: bytes) -> str:
    """When a workspace was last started: the ``at`` of the last line its supervisor recorded (pure)."""
    for line in reversed(installs.decode(errors="replace").splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("at"), str):
            return str(record["at"])
    return ""
