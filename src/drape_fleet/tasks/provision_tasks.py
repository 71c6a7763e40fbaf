"""`invoke provision` and `invoke verify`: thin over drape_fleet.provision.service and .verify."""

from __future__ import annotations

import time

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config import Host
from drape_fleet.console import console, errors, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.provision.preflight import ProvisionRefused, check_ssh_files
from drape_fleet.provision.runner import DEPLOY_ORDER, HostRun, Progress, summary_rows
from drape_fleet.provision.service import provision as run_provision
from drape_fleet.provision.verify import run_verify
from drape_fleet.tasks.common import ENV_HELP, hosts_of
from drape_fleet.tasks.reinstall_option import reinstall_first


def _show(progress: Progress) -> None:
    console.print(f"  [cyan]{progress.host}[/cyan] {progress.deploy} ...")


def _summary(runs: list[HostRun], dry: bool) -> None:
    """Changes per deploy (rows) and host (columns), then what changed, from pyinfra's JSON."""
    hosts = [run.host for run in runs]
    table = Table(title="would change (dry run)" if dry else "changes per deploy")
    table.add_column("deploy")
    for name in hosts:
        table.add_column(name, justify="right")
    cells: dict[tuple[str, str], str] = {}
    deploys: list[str] = []
    for row in summary_rows(runs):
        if row["deploy"] not in deploys:
            deploys.append(row["deploy"])
        text = f"{row['changed']} of {row['changed'] + row['unchanged'] + row['failed']}"
        if row["failed"]:
            text += f" [red]{row['failed']} failed[/red]"
        cells[(row["deploy"], row["host"])] = text
    for deploy in deploys:
        table.add_row(deploy, *(cells.get((deploy, name), "-") for name in hosts))
    console.print(table)
    for row in summary_rows(runs):
        if row["what"]:
            label = "failed" if row["failed"] else ("would change" if dry else "changed")
            console.print(f"  [cyan]{row['host']}[/cyan] {row['deploy']} {label}: {'; '.join(row['what'])}",
                          soft_wrap=True)
    if dry:
        follow = sum(len(d.conditional) for run in runs for d in run.deploys.values())
        if follow:
            console.print(f"  (and up to {follow} follow-up step(s), such as restarts, if those changes need them)")


@task(help={
    "host": "host to provision (repeatable: --host ax1 --host ax2)",
    "all": "provision every host of the fleet, in parallel",
    "only": f"comma-separated deploys to run, e.g. ssh,firewall (in this order: {', '.join(DEPLOY_ORDER)})",
    "dry": "show what would change, change nothing",
    "force": "go on despite a degraded RAID (loudly)",
    "reinstall": "first reinstall the host from bare metal (Robot rescue system, installimage: DESTROYS ALL ITS "
                 "DATA), then provision and verify it; with --dry, show the steps and the installimage config",
    "yes": "with --reinstall: confirm without being asked",
    "restart": "with --reinstall: start over instead of resuming where the last run stopped",
    "rescue_fingerprint": "with --reinstall: the rescue system's host key fingerprint, when Robot's activation "
                          "announces none (repeatable)",
    "env": ENV_HELP,
}, iterable=["host", "rescue_fingerprint"])
def provision(c: Context, host: list[str] | None = None, all: bool = False, only: str = "", dry: bool = False,
              force: bool = False, reinstall: bool = False, yes: bool = False, restart: bool = False,
              rescue_fingerprint: list[str] | None = None, env: str = "") -> None:
    """Provision hosts: storage, base system, SSH, firewall, Docker, pnpm store (checks first, then changes)."""
    target, names = hosts_of(env, host or [], all)
    if reinstall:
        if len(names) != 1 or all or only:
            fail("--reinstall takes exactly one --host, and every deploy (no --all, no --only)")
        if not reinstall_first(target, names[0], yes=yes, dry=dry, restart=restart,
                               rescue_fingerprints=rescue_fingerprint or ()):
            return
    what = ", ".join(h.name for h in names)
    say(f"{'dry run: ' if dry else ''}provisioning {what} ({target.environment}, fleet {target.env.fleet_file})")
    if force:
        errors.print("[bold yellow]--force[/bold yellow]: a degraded RAID will NOT stop this run")
    started = time.monotonic()
    try:
        result = run_provision(target, [h.name for h in names], only=only, dry=dry, force=force,
                               on_progress=_show, note=lambda line: say(line))
    except ProvisionRefused as exc:
        fail(f"provisioning refused:\n{exc}")
    _summary(result.runs, dry)
    for run in result.runs:
        state = "[green]ok[/green]" if run.ok else "[red]FAILED[/red]"
        console.print(f"{run.host}: {state}, {run.changes} change(s) in {run.seconds:.1f} s")
        for note in run.notes:
            console.print(f"  [yellow]warning[/yellow] {note.deploy}: {note.message}")
    failed = [run for run in result.runs if not run.ok]
    if failed:
        fail("\n".join(f"{run.host}: {run.error}" for run in failed))
    console.print(f"[green]{'dry run done' if dry else 'provisioned'}[/green]: {what} in "
                  f"{time.monotonic() - started:.1f} s")
    if reinstall:
        _verify(target, names)


def _verify(target: FleetTarget, names: list[Host]) -> None:
    say(f"verifying {', '.join(h.name for h in names)} ({target.environment})")
    result = run_verify(target, names)
    if not result.ok:
        fail(f"verification failed (pytest exit {result.returncode}): see the failures above")
    console.print("[green]verified[/green]")


@task(help={"host": "host to verify (repeatable)", "all": "verify every host", "env": ENV_HELP},
      iterable=["host"])
def verify(c: Context, host: list[str] | None = None, all: bool = False, env: str = "") -> None:
    """Check hosts are as provisioned: testinfra over SSH (tests/host), reading the host, not our templates.

    Packages, services, ports, sshd, firewall, Docker, volumes, users, sysctls."""
    target, names = hosts_of(env, host or [], all)
    try:
        check_ssh_files(target, names)
    except ProvisionRefused as exc:
        fail(str(exc))
    _verify(target, names)
