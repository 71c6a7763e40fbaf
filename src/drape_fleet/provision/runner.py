"""Run pyinfra for one host and read what it did: the argv (pure), the JSON it prints (parsed purely), the
deploys' structured notes (drape_fleet.provision.notes), and a thin executor that streams its progress.
`invoke provision` is built on this; tests call it directly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drape_fleet.paths import project_root
from drape_fleet.provision.notes import NOTES_VAR, DeployNote, NoteKind, read_notes

DEPLOY_ORDER = ("storage", "base", "ssh", "firewall", "docker", "cache", "ingress", "monitoring", "monitoring_server",
                "backup", "link", "hardening")
"""The deploys, in the order deploys/site.py applies them; ``--only`` keeps this order."""


class UnknownDeploy(ValueError):
    pass


def select_deploys(only: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"ssh,firewall"`` -> the deploy files to run, in site order; empty/None -> all of them."""
    if not only:
        return DEPLOY_ORDER
    wanted = [w.strip() for w in (only.split(",") if isinstance(only, str) else only) if w.strip()]
    unknown = [w for w in wanted if w not in DEPLOY_ORDER]
    if unknown:
        raise UnknownDeploy(f"unknown deploy {', '.join(repr(u) for u in unknown)}: choose from "
                            f"{', '.join(DEPLOY_ORDER)} (comma-separated)")
    return tuple(d for d in DEPLOY_ORDER if d in wanted)


def pyinfra_argv(*, inventory: Path, host: str, deploys: Sequence[str], dry: bool = False,
                 data: Mapping[str, str] | None = None, ssh_user: str | None = None) -> list[str]:
    """The command line for one host: JSON on stdout, progress on stderr. A dry run leaves out ``-y``:
    with it pyinfra skips the change detection a dry run is for."""
    argv = [sys.executable, "-m", "pyinfra", "--json", "--limit", host]
    argv.append("--dry" if dry else "-y")
    if ssh_user:
        argv += ["--user", ssh_user]
    for key, value in sorted((data or {}).items()):
        argv += ["--data", f"{key}={value}"]
    argv.append(str(inventory))
    if tuple(deploys) == DEPLOY_ORDER:
        argv.append("deploys/site.py")
    else:
        argv += [f"deploys/{d}.py" for d in deploys]
    return argv


# ---------------------------------------------------------------------------------------------------
# What pyinfra said
# ---------------------------------------------------------------------------------------------------

def split_op_name(name: str) -> tuple[str, str]:
    """``deploys/ssh.py | ssh | sshd_config candidate`` -> (``ssh``, ``sshd_config candidate``)."""
    parts = name.split(" | ")
    if parts and parts[0].startswith("deploys/"):
        parts = parts[1:]
    if len(parts) >= 2:
        return parts[0], " | ".join(parts[1:])
    return "(other)", name


@dataclass
class DeployResult:
    deploy: str
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)
    conditional: list[str] = field(default_factory=list)
    """Dry runs only: steps that run if an earlier step changes (a restart after a config change)."""


@dataclass
class HostRun:
    host: str
    dry: bool
    ok: bool
    deploys: dict[str, DeployResult]
    error: str = ""
    seconds: float = 0.0
    notes: list[DeployNote] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(len(d.changed) for d in self.deploys.values())

    def noted(self, kind: NoteKind) -> bool:
        return any(note.kind is kind for note in self.notes)


def parse_run_json(text: str, host: str, *, dry: bool) -> HostRun:
    """pyinfra's ``--json`` output: ``results`` after a run, only ``plan`` after ``--dry``."""
    data = json.loads(text)
    deploys: dict[str, DeployResult] = {}

    def entry(name: str) -> tuple[DeployResult, str]:
        deploy, op = split_op_name(name)
        return deploys.setdefault(deploy, DeployResult(deploy)), op

    if dry or data.get("results") is None:
        for op in data.get("plan", []):
            result, name = entry(op["name"])
            if host in op.get("hosts_with_change", []):
                result.changed.append(name)
            elif host in op.get("hosts_with_conditional_change", []):
                result.conditional.append(name)
            else:
                result.unchanged += 1
        return HostRun(host, dry=True, ok=True, deploys=deploys)
    results = data["results"]
    for op in results.get("operations", []):
        result, name = entry(op["name"])
        if host in op.get("error", []):
            result.failed.append(name)
        elif host in op.get("success", []):
            result.changed.append(name)
        elif host in op.get("no_change", []):
            result.unchanged += 1
    failed = host in results.get("failed_hosts", []) or any(d.failed for d in deploys.values())
    return HostRun(host, dry=False, ok=not failed, deploys=deploys)


_ERROR_LINES = re.compile(r"(pyinfra error:|Error:|error:|DeployError|ConnectError|cannot |refus)", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_from_stderr(stderr: str) -> str:
    lines = [_ANSI.sub("", line).strip() for line in stderr.splitlines()]
    interesting = [line for line in lines if line and _ERROR_LINES.search(line)]
    return "\n".join((interesting or [line for line in lines if line])[-6:])


# ---------------------------------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    host: str
    deploy: str
    operation: str
    """The first operation of the deploy that just started."""


ProgressFn = Callable[[Progress], None]
_STARTING = re.compile(r"^--> Starting operation: (?P<name>.+?)\s*$")


def run_pyinfra(argv: Sequence[str], host: str, *, dry: bool, on_progress: ProgressFn | None = None,
                env: Mapping[str, str] | None = None, timeout: float = 1800.0) -> HostRun:
    """Run one pyinfra process; report each deploy as it starts; read what changed from its JSON, which is
    exact (its per-operation log lines are not reliably ordered), and what the deploys noted from their file."""
    with tempfile.TemporaryDirectory(prefix="drape-notes-") as tmp:
        notes_file = Path(tmp) / "notes.jsonl"
        run = _run(argv, host, dry=dry, on_progress=on_progress, timeout=timeout,
                   env={**os.environ, **(env or {}), NOTES_VAR: str(notes_file)})
        run.notes = read_notes(notes_file, host)
    return run


def _run(argv: Sequence[str], host: str, *, dry: bool, on_progress: ProgressFn | None, env: Mapping[str, str],
         timeout: float) -> HostRun:
    started = time.monotonic()
    process = subprocess.Popen(list(argv), cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, env=dict(env))
    assert process.stdout is not None and process.stderr is not None
    stderr_lines: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        deploy = ""
        for raw in process.stderr:
            line = _ANSI.sub("", raw.rstrip("\n"))
            stderr_lines.append(line)
            if match := _STARTING.match(line):
                current, operation = split_op_name(match["name"])
                if current != deploy and on_progress:
                    on_progress(Progress(host, current, operation))
                deploy = current

    stdout_parts: list[str] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        stdout_parts.append(process.stdout.read())

    # Each pipe has exactly one reader (communicate() would read stderr too, racing the progress reader).
    readers = [threading.Thread(target=fn, daemon=True) for fn in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        for reader in readers:
            reader.join(5)
        return HostRun(host, dry, False, {}, error=f"pyinfra did not finish within {timeout:.0f} s",
                       seconds=time.monotonic() - started)
    for reader in readers:
        reader.join(10)
    stdout = "".join(stdout_parts)
    stderr = "\n".join(stderr_lines)
    seconds = time.monotonic() - started
    try:
        run = parse_run_json(stdout, host, dry=dry) if stdout.strip() else None
    except (json.JSONDecodeError, KeyError, TypeError):
        run = None
    if run is None:
        return HostRun(host, dry, False, {}, error=error_from_stderr(stderr) or f"pyinfra exited {process.returncode}",
                       seconds=seconds)
    run.seconds = seconds
    if process.returncode != 0 or not run.ok:
        run.ok = False
        run.error = error_from_stderr(stderr) or f"pyinfra exited {process.returncode}"
    return run


def summary_rows(runs: Sequence[HostRun]) -> list[dict[str, Any]]:
    """One row per host and deploy, for the closing table."""
    rows = []
    for run in runs:
        for deploy in DEPLOY_ORDER + tuple(d for d in run.deploys if d not in DEPLOY_ORDER):
            result = run.deploys.get(deploy)
            if result is None:
                continue
            rows.append({"host": run.host, "deploy": deploy, "changed": len(result.changed),
                         "unchanged": result.unchanged, "failed": len(result.failed),
                         "what": result.failed or result.changed})
    return rows
