"""The trusted job that fills (or rebuilds) a host's shared pnpm store: one container on the host.

It runs a template image's own supervisor in fill mode (``DRAPE_FILL_STORE=1``: the package-manager choice a
preview makes, ``pnpm install --ignore-scripts`` online into the store) for each source, with the project at
``/workspace/app`` as in a preview (pnpm 10 registers projects in the store by path; previews, which cannot write
there, find theirs already registered). The container runs as the store's owner (``provisioning.cache``), with the
store the only writable host path, no capabilities, no new privileges, bounded memory, processes and CPU.

``rebuild`` is the prune: fill a new store beside the old one (``<store>/.next``) from the current sources, then,
holding the store directory's lock exclusively (installs and fills hold it shared), swap the new layouts in and
delete the old ones. Packages no current source needs leave; no install ever sees a half-swapped store. A rebuild
whose template or popular sources fail keeps the old store (a registry outage must not empty it).

Pure builders (script, container, inputs archive, result parsing) and one executor through the engine seam.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from docker.errors import APIError

from drape_fleet.config.previews import StoreSettings
from drape_fleet.config.provisioning import CacheSettings
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError
from drape_fleet.store.sources import JOB_LABEL, Source

STORE_MOUNT = "/pnpm-store"
JOB_NAME = "drape-store-job"
"""One job per host at a time: the engine refuses a second container of this name."""
RESULT_MARK = "DRAPE-FILL"
LOG_MARK = "DRAPE-FILL-LOG"
SUMMARY_FILE = ".drape-warm.json"
LOCK_WAIT_S = 600
WRITER_LOCK = ".warm.lock"
"""Held by the job for its whole run, and by a backup of the store while it copies (deploys/backup.py makes it)."""
STALE_CREATED_S = 600
"""A job container created but not started for this long was left by a client that died in between."""


class StoreJobError(RuntimeError):
    """The job could not run (another runs, the image is missing, the host refused); the message says what to do."""


def fill_script(*, rebuild: bool) -> str:
    """The job's shell script (pure). One result line per source: ``DRAPE-FILL <dir> <timings json>``."""
    target = f"{STORE_MOUNT}/.next" if rebuild else STORE_MOUNT
    lines = [
        "set -u",
        f"STORE={STORE_MOUNT}; TARGET={target}; failed=0; filled=0; essential_failed=0",
        # The store's writer lock, which a backup holds while it copies the store (drape_fleet.backup's catalogue):
        # the job writes only while no backup reads.
        f"exec 9>>\"$STORE/{WRITER_LOCK}\"",
        f"flock --wait {LOCK_WAIT_S} 9 || {{ echo 'DRAPE-FILL the store stayed locked by a backup: run again "
        "later'; exit 5; }",
        *(["rm -rf \"$TARGET\" && mkdir \"$TARGET\""] if rebuild else []),
        "for dir in /fill/*/; do",
        "  name=$(basename \"$dir\")",
        "  rm -rf /workspace/app && mkdir -p /workspace/app && cp -a \"$dir.\" /workspace/app/ && cd /workspace/app",
        "  DRAPE_FILL_STORE=1 DRAPE_PNPM_STORE=\"$TARGET\" DRAPE_WORKDIR=/workspace DRAPE_PHASE_FILE=/tmp/phase \\",
        "    DRAPE_TIMINGS_FILE=\"/tmp/$name.json\" node /opt/drape/preview.mjs > \"/tmp/$name.log\" 2>&1 "
        "|| { failed=$((failed + 1)); case $name in *-template|*-popular) essential_failed=1;; esac; }",
        "  filled=$((filled + 1)); cd /",
        f"  echo \"{RESULT_MARK} $name $(cat \"/tmp/$name.json\" 2>/dev/null || echo '{{}}')\"",
        f"  echo \"{LOG_MARK} $name $(tail -n 4 \"/tmp/$name.log\" | tr '\\n' ' ' | cut -c1-400)\"",
        "done",
    ]
    if rebuild:
        lines += [
            # Swap under the exclusive lock: installs (shared lock) finish first, new ones wait milliseconds.
            "if [ $essential_failed = 1 ]; then echo 'DRAPE-REBUILD a template or the popular packages failed: the old "
            "store stays'; rm -rf \"$TARGET\"; exit 3; fi",
            f"flock --exclusive --wait {LOCK_WAIT_S} \"$STORE\" sh -c '"
            "rm -rf \"$0/.old\" && mkdir \"$0/.old\" && "  # .old: what a swap cut short by a crash left
            "for v in \"$0\"/.next/v*; do [ -e \"$v\" ] || continue; n=$(basename \"$v\"); "
            "if [ -e \"$0/$n\" ]; then mv \"$0/$n\" \"$0/.old/$n\"; fi; mv \"$v\" \"$0/$n\"; done' \"$STORE\" "
            "|| { echo 'DRAPE-REBUILD the store stayed locked by installs: run again later'; exit 4; }",
            "echo \"DRAPE-REBUILD swapped at $(date +%s.%N)\"",
            "rm -rf \"$STORE/.old\" \"$TARGET\"",
        ]
    kind = "rebuild" if rebuild else "warm"
    lines += [
        "printf '{\"finished\": \"%s\", \"kind\": \"" + kind + "\", \"sources\": %s, \"failed\": %s}\\n' "
        f"\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" \"$filled\" \"$failed\" > \"$STORE/{SUMMARY_FILE}\"",
        "exit 0",
    ]
    return "\n".join(lines) + "\n"


def source_dirs(sources: Sequence[Source]) -> list[str]:
    """Each source's directory under /fill: its order and kind, so the job's lines map back to sources."""
    return [f"{index:03d}-{source.kind}" for index, source in enumerate(sources)]


def inputs_archive(sources: Sequence[Source]) -> bytes:
    """The tar the job finds at /fill (put into the created container before it starts)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        for directory, source in zip(source_dirs(sources), sources, strict=True):
            folder = tarfile.TarInfo(f"fill/{directory}")
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            for name, data in sorted(source.files.items()):
                add(f"fill/{directory}/{name}", bytes(data))
    return buffer.getvalue()


def job_container(image: str, cache: CacheSettings, settings: StoreSettings, *, rebuild: bool) -> dict[str, Any]:
    """Arguments for ``APIClient.create_container`` (with ``host_config`` as a dict for ``create_host_config``)."""
    return {
        "image": image,
        "name": JOB_NAME,
        "entrypoint": ["sh", "-c", fill_script(rebuild=rebuild)],
        "user": f"{cache.uid}:{cache.uid}",
        "environment": {"HOME": "/tmp", "CI": "true", "npm_config_update_notifier": "false"},  # noqa: S108
        "labels": {JOB_LABEL: "rebuild" if rebuild else "warm"},
        "host_config": {
            "binds": [f"{cache.store_path}:{STORE_MOUNT}:rw"],
            "tmpfs": {"/workspace": f"size=3g,uid={cache.uid},gid={cache.uid},mode=755,exec",
                      "/tmp": "size=512m,exec"},  # noqa: S108 - the job container's own tmpfs
            "mem_limit": f"{settings.job_memory_mib}m",
            "pids_limit": 4096,
            "nano_cpus": 2_000_000_000,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
        },
    }


@dataclass(frozen=True)
class FillResult:
    source: str
    kind: str
    code: int | None
    seconds: float | None
    downloaded: int | None
    reused: int | None
    note: str

    @property
    def ok(self) -> bool:
        return self.code in (0, None) and not self.note.startswith("failed")


@dataclass(frozen=True)
class JobReport:
    host: str
    results: tuple[FillResult, ...]
    rebuild: bool
    swapped: bool
    exit_code: int
    log_tail: str

    @property
    def failed(self) -> list[FillResult]:
        return [r for r in self.results if not r.ok]


def parse_results(logs: str, sources: Sequence[Source]) -> list[FillResult]:
    """The job's result lines, mapped back to their sources (pure)."""
    by_dir = dict(zip(source_dirs(sources), sources, strict=True))
    tails = {parts[1]: parts[2] if len(parts) > 2 else "" for line in logs.splitlines()
             if line.startswith(LOG_MARK + " ") and (parts := line.split(" ", 2))}
    results = []
    for line in logs.splitlines():
        if not line.startswith(RESULT_MARK + " "):
            continue
        _, directory, payload = line.split(" ", 2)
        try:
            timings = json.loads(payload)
        except ValueError:
            timings = {}
        fill = timings.get("fill") or {}
        source = by_dir.get(directory)
        note = (f"failed: {fill['error']}" if fill.get("error") else fill.get("skipped") or
                ("" if fill else f"failed: {tails.get(directory, '').strip() or 'the supervisor wrote no result'}"))
        results.append(FillResult(source.name if source else directory, source.kind if source else "?",
                                  fill.get("code"), timings.get("fill_s"), fill.get("downloaded"), fill.get("reused"),
                                  note))
    return results


def is_leftover(state: Mapping[str, Any], now: datetime) -> bool:
    """Is an existing job container (its ``State`` and ``Created`` from inspect) a leftover rather than a job in
    progress (pure)? Stopped or dead: a job whose host died or rebooted under it (the container outlives the
    crash, its name blocks every later fill). Created and never started for ``STALE_CREATED_S``: a client that died
    between create and start. A running job, or one created a moment ago (another fill about to start it), is
    not."""
    status = str(state.get("State", {}).get("Status", ""))
    if status in ("exited", "dead"):
        return True
    if status != "created":
        return False
    # The engine's RFC 3339 time has nanoseconds; Python reads microseconds.
    created = re.sub(r"(\.\d{6})\d+", r"\1", str(state.get("Created", ""))).replace("Z", "+00:00")
    try:
        return (now - datetime.fromisoformat(created)).total_seconds() > STALE_CREATED_S
    except (ValueError, TypeError):  # no readable time: not ours to judge, leave it
        return False


def _create(engine: Engine, image: str, spec: Mapping[str, Any], host_config: Mapping[str, Any]) -> str:
    """Create the job container; a leftover of a job that cannot be running is removed first."""
    def create() -> str:
        return str(engine.call(lambda api: api.create_container(host_config=api.create_host_config(**host_config),
                                                                 **spec), "create the store job")["Id"])

    def refused(exc: APIError) -> StoreJobError:
        if exc.status_code == 404:
            return StoreJobError(f"{engine.name}: the image {image} is not there: run `invoke fleet.images` first")
        return StoreJobError(f"{engine.name}: a store job already runs there (container {JOB_NAME}); wait for it to "
                             "finish and run again")

    try:
        return create()
    except APIError as exc:
        if exc.status_code not in (404, 409):
            raise
        existing = engine.call(lambda api: api.inspect_container(JOB_NAME), "inspect the store job") \
            if exc.status_code == 409 else None
        if existing is None or not is_leftover(existing, datetime.now(UTC)):
            raise refused(exc) from None
    engine.call(lambda api: api.remove_container(existing["Id"], force=True), "remove a leftover store job")
    try:
        return create()
    except APIError as exc:
        if exc.status_code not in (404, 409):
            raise
        raise refused(exc) from None


def run_job(engine: Engine, image: str, cache: CacheSettings, settings: StoreSettings, sources: Sequence[Source],
            *, rebuild: bool = False) -> JobReport:
    """Create the job container on ``engine``'s host, hand it its inputs, run it to the end, remove it."""
    spec = job_container(image, cache, settings, rebuild=rebuild)
    host_config = spec.pop("host_config")
    cid = _create(engine, image, spec, host_config)
    try:
        engine.call(lambda api: api.put_archive(cid, "/", inputs_archive(sources)), "job inputs")
        engine.call(lambda api: api.start(cid), "start the store job")
        waited = engine.call(lambda api: api.wait(cid, timeout=settings.job_timeout_s), "store job",
                             timeout=settings.job_timeout_s + 60)
        logs = engine.call(lambda api: api.logs(cid), "job log").decode(errors="replace")
    except EngineError as exc:
        raise StoreJobError(f"{engine.name}: the store job failed: {exc}") from None
    finally:
        engine.call(lambda api: api.remove_container(cid, force=True), "remove the store job", timeout=120)
    code = int(waited.get("StatusCode", -1))
    tail = "\n".join(line for line in logs.splitlines() if not line.startswith(RESULT_MARK))[-2000:]
    return JobReport(engine.name, tuple(parse_results(logs, sources)), rebuild, rebuild and code == 0, code, tail)


def job_image(frameworks: Mapping[str, Any], templates: Sequence[str]) -> str:
    """The template image the job runs (any template carries the supervisor and every pnpm major)."""
    for name in ("react", *templates):
        if name in frameworks:
            return str(frameworks[name].image)
    raise StoreJobError(f"the fleet has no preview template ({', '.join(templates)}) to run the store job with: "
                        "add one under [runtime.frameworks]")
