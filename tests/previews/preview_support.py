"""Running a preview template directly on this machine's engine, as the runtime will once the token file is
wired in: create the container, put the handover files in through the archive API, start it, follow its phase
file to a final phase. Observations (phase, details, timings, logs, inspect) come from the engine, not from
the code under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import NotFound

from drape_fleet.lab.settings import LabSettings


@dataclass
class PreviewLab:
    settings: LabSettings
    client: docker.DockerClient
    image: str
    ca: bytes
    projects: Path

    def url(self, repo: str) -> str:
        from drape_fleet.lab import gitserver

        return gitserver.repo_url(self.settings, repo)

    def token(self, repo: str, ttl_s: float = 600) -> Any:
        from drape_fleet.lab import gitserver

        return gitserver.Tokens(self.settings).create(repo, ttl_s)


HANDOVER_DIR = "/drape/handover"
PREVIEW_UID = 1000
FINAL = ("ready", "failed")


def handover_tar(credential: bytes | None, ca: bytes | None = None) -> bytes:
    """The archive the runtime PUTs at ``/drape`` before start: ``handover/git-credentials`` (0400) and an optional
    ``handover/git-ca.pem`` (0444), owned by the preview's uid so its entrypoint can delete them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("handover")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, PREVIEW_UID, PREVIEW_UID
        tar.addfile(folder)
        for name, data, mode in (("git-credentials", credential, 0o400), ("git-ca.pem", ca, 0o444)):
            if data is None:
                continue
            info = tarfile.TarInfo(f"handover/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), mode, PREVIEW_UID, PREVIEW_UID
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Outcome:
    phase: str
    details: list[str]
    timings: dict[str, Any]
    logs: str
    seconds: float
    inspect: dict[str, Any] = field(repr=False)
    container: Any = field(repr=False)

    @property
    def why(self) -> str:
        return self.phase.partition(":")[2].strip()


def read_file(container: Any, path: str) -> str | None:
    try:
        stream, _ = container.get_archive(path)
    except NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read(65536).decode(errors="replace") if handle is not None else None


def run_preview(client: docker.DockerClient, image: str, *, network: str, name: str, repo: str | None = None,
                ref: str | None = None, credential: bytes | None = None, ca: bytes | None = None,
                env: dict[str, str] | None = None, timeout_s: float = 300, keep: bool = False,
                **host_config: Any) -> Outcome:
    """Start ``image`` as a preview of ``repo`` and wait for ``ready`` or ``failed`` (or the timeout)."""
    environment = {"PORT": "3000", "DRAPE_PHASE_FILE": "/drape/phase", **(env or {})}
    if repo:
        environment["DRAPE_REPO"] = repo
    if ref:
        environment["DRAPE_REF"] = ref
    with contextlib.suppress(NotFound):  # a leftover of an interrupted run
        client.containers.get(name).remove(force=True)
    container = client.containers.create(image, name=name, environment=environment, network=network,
                                          user="1000:1000", labels={"drape.test": "previews"}, **host_config)
    started = time.monotonic()
    try:
        if credential is not None or ca is not None:
            container.put_archive("/drape", handover_tar(credential, ca))
        container.start()
        phase_text = ""
        while time.monotonic() - started < timeout_s:
            phase_text = read_file(container, "/drape/phase") or ""
            last = phase_text.strip().splitlines()[-1] if phase_text.strip() else ""
            if last.startswith(FINAL):
                break
            container.reload()
            if container.status == "exited":
                phase_text = read_file(container, "/drape/phase") or ""
                break
            time.sleep(0.1)
        seconds = time.monotonic() - started
        lines = phase_text.strip().splitlines() or ["(no phase)"]
        timings = json.loads(read_file(container, "/drape/timings.json") or "{}")
        container.reload()
        return Outcome(phase=lines[-1], details=lines[:-1], timings=timings,
                       logs=container.logs().decode(errors="replace"), seconds=seconds,
                       inspect=container.attrs, container=container)
    finally:
        if not keep:
            container.remove(force=True)
