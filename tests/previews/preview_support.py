"""Running a preview template directly on this machine's engine, as the runtime does: create the container, put
the token file in through the archive API, start it, follow its phase file to a final phase. Observations (phase,
details, timings, logs, inspect) come from the engine, not from the code under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
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
    store: Path | None = None
    """A shared store filled by the trusted job with the generated projects' packages (``local_store``)."""

    def url(self, repo: str) -> str:
        from drape_fleet.lab import gitserver

        return gitserver.repo_url(self.settings, repo)

    def token(self, repo: str, ttl_s: float = 600) -> Any:
        from drape_fleet.lab import gitserver

        return gitserver.Tokens(self.settings).create(repo, ttl_s)


FLEET_HOST = "ax2"
"""The lab host the fleet tests place previews on (the benchmark uses ax1)."""
WORKSPACE_PREFIX = "t9-"


@dataclass
class FleetLab:
    """A provisioned lab host as production runs previews: the runtime, the store, the ingress."""

    target: Any
    fleet: Any
    runtime: Any
    engine: Any
    previews: PreviewLab
    key: bytes
    ca: Path

    def start(self, workspace: str, framework: str, project: str | None = None, timeout_s: float = 300) -> Any:
        """A preview through the runtime, to its final phase: ``project`` from the lab's git server, with a token
        of its own (the runtime hands it over as a file, with the lab CA the fleet names)."""
        repo = {"repo": self.previews.url(project), "repo_token": self.previews.token(project).repo_token(),
                "project": project} if project else {}
        return self.wait(self.runtime.start(WORKSPACE_PREFIX + workspace, "u-7", framework, **repo), timeout_s)

    def wait(self, status: Any, timeout_s: float = 300) -> Any:
        """The status once final (ready, failed, lost) or at the timeout."""
        deadline = time.monotonic() + timeout_s
        while not status.phase.final and time.monotonic() < deadline:
            time.sleep(0.2)
            status = self.runtime.status(status.workspace) or status
        return status

    def gone(self, workspace: str, timeout_s: float = 120) -> None:
        """Wait until the workspace has no preview (a removal with a real node_modules takes a while)."""
        deadline = time.monotonic() + timeout_s
        while self.runtime.status(workspace) is not None and time.monotonic() < deadline:
            time.sleep(0.5)

    def file(self, container_id: str, path: str) -> str | None:
        def fetch(api: Any) -> bytes:
            stream, _ = api.get_archive(container_id, path)
            return b"".join(stream)

        try:
            data = self.engine.call(fetch, "read file")
        except NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            return handle.read().decode(errors="replace") if handle is not None else None


TOKEN_FILE = "/drape/repo-token"
"""Where the runtime writes a preview's repository token (``drape_fleet.runtime.spec.REPO_TOKEN_FILE``)."""
PREVIEW_UID = 1000
FINAL = ("ready", "failed")
WORKSPACE_TMPFS = "size=2g,uid=1000,gid=1000,mode=755,exec"


def handover_tar(token: str | None, ca: bytes | None = None) -> bytes:
    """The archive the runtime PUTs at ``/`` before start: ``drape/repo-token`` (0400) and, for a private git
    server, ``drape/git-ca.pem`` (0444), owned by the preview's uid so its entrypoint can delete the token."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in (("repo-token", token.encode() if token is not None else None, 0o400),
                                 ("git-ca.pem", ca, 0o444)):
            if data is None:
                continue
            info = tarfile.TarInfo(f"drape/{name}")
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
                ref: str | None = None, token: str | None = None, ca: bytes | None = None,
                env: dict[str, str] | None = None, timeout_s: float = 300, keep: bool = False,
                store: Path | None = None, **host_config: Any) -> Outcome:
    """Start ``image`` as a preview of ``repo`` and wait for ``ready`` or ``failed`` (or the timeout); with
    ``store``, that shared store read-only at /pnpm-store, as the runtime mounts the host's."""
    environment = {"PORT": "3000", "DRAPE_PHASE_FILE": "/drape/phase", **(env or {})}
    # The workspace in memory: what these tests prove (fetch, install path, readiness, reasons) does not depend on
    # its filesystem, and a copy into this machine's overlay-on-ext4 is what made them slow (the runtime's kept
    # volume on the lab hosts' XFS is tests/previews/test_runtime_lab.py's).
    host_config.setdefault("tmpfs", {"/workspace": WORKSPACE_TMPFS})
    if store is not None:
        environment["DRAPE_PNPM_STORE"] = "/pnpm-store"
        host_config["volumes"] = {str(store): {"bind": "/pnpm-store", "mode": "ro"}}
    if repo:
        environment["DRAPE_REPO"] = repo
    if ref:
        environment["DRAPE_REF"] = ref
    if token is not None:
        environment["DRAPE_REPO_TOKEN_FILE"] = TOKEN_FILE
    with contextlib.suppress(NotFound):  # a leftover of an interrupted run
        client.containers.get(name).remove(force=True)
    container = client.containers.create(image, name=name, environment=environment, network=network,
                                          user="1000:1000", labels={"drape.test": "previews"}, **host_config)
    started = time.monotonic()
    try:
        if token is not None or ca is not None:
            container.put_archive("/", handover_tar(token, ca))
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
        if lines[-1].startswith("failed"):  # a failed preview stops by itself: give it the moment it takes
            deadline = time.monotonic() + 15
            while container.status != "exited" and time.monotonic() < deadline:
                time.sleep(0.1)
                container.reload()
        timings = json.loads(read_file(container, "/drape/timings.json") or "{}")
        container.reload()
        return Outcome(phase=lines[-1], details=lines[:-1], timings=timings,
                       logs=container.logs().decode(errors="replace"), seconds=seconds,
                       inspect=container.attrs, container=container)
    finally:
        if not keep:
            container.remove(force=True)


def run_previews(runs: Mapping[str, Callable[[], Outcome]], workers: int = 4) -> dict[str, Outcome]:
    """Several previews at once (each its own container and name), as a host runs them: a test module's cases
    share one wait instead of adding theirs up. Every run finishes before the first error is raised."""
    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(run) for name, run in runs.items()}
    return {name: future.result() for name, future in futures.items()}
