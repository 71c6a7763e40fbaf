"""`invoke provision` as a library call: choose the fleet, check everything before touching a host, run the
deploys on every chosen host in parallel (one pyinfra process each), and finish a fresh host's SSH hardening
once its deploy user is proven."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drape_fleet.config import Host
from drape_fleet.console import Log
from drape_fleet.environments import ENV_VAR, FleetTarget
from drape_fleet.monitoring.plan import MonitoringRefused
from drape_fleet.monitoring.receivers import check_monitoring
from drape_fleet.paths import project_root
from drape_fleet.provision.context import FORCE_KEY
from drape_fleet.provision.notes import NoteKind
from drape_fleet.provision.preflight import (
    HostProbe,
    ProvisionRefused,
    RemoteShell,
    check_probe,
    check_ssh_files,
    default_remote,
    ensure_pki,
    probe_host,
    resolve_hosts,
)
from drape_fleet.provision.runner import HostRun, ProgressFn, pyinfra_argv, run_pyinfra, select_deploys

INVENTORY = Path("inventories") / "fleet.py"
"""The inventory the runner gives pyinfra: the fleet of $DRAPE_ENV, which ``_pyinfra_env`` sets."""


def _inventory() -> Path:
    return project_root() / INVENTORY


def _pyinfra_env(target: FleetTarget) -> dict[str, str]:
    return {ENV_VAR: target.environment}


@dataclass
class ProvisionResult:
    runs: list[HostRun]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)


def preflight(target: FleetTarget, hosts: Sequence[Host], deploys: Sequence[str], *, force: bool,
              remote: RemoteShell = default_remote, note: Log = lambda _: None) -> dict[str, HostProbe]:
    """Everything that can refuse, for every host, before any host is changed."""
    if "docker" in deploys:
        report = ensure_pki(target.fleet, hosts, create_ca=target.env.is_lab)
        for line in report.notes:
            note(f"pki: {line}")
    check_ssh_files(target, hosts)

    def one(host: Host) -> HostProbe | ProvisionRefused:
        try:
            probe = probe_host(target.ssh_target(host), host, remote)
            for line in check_probe(target.fleet, probe, check_firewall="firewall" in deploys, force=force):
                note(line)
            return probe
        except ProvisionRefused as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        outcomes = list(pool.map(one, hosts))
    refusals = [str(o) for o in outcomes if isinstance(o, ProvisionRefused)]
    if refusals:
        raise ProvisionRefused("\n".join(refusals) + "\nNothing was changed on any host.")
    if {"monitoring", "monitoring_server"} & set(deploys):
        try:
            check_monitoring(target.fleet, str(target.env.fleet_file))
        except MonitoringRefused as exc:
            raise ProvisionRefused(f"{exc}\nNothing was changed on any host.") from None
    return {probe.host: probe for probe in outcomes if isinstance(probe, HostProbe)}


def provision(target: FleetTarget, names: Sequence[str] = (), *, every: bool = False, only: str = "",
              dry: bool = False, force: bool = False, on_progress: ProgressFn | None = None,
              note: Log = lambda _: None, remote: RemoteShell = default_remote) -> ProvisionResult:
    hosts = resolve_hosts(target.fleet, names, every)
    try:
        deploys = select_deploys(only)
    except ValueError as exc:
        raise ProvisionRefused(str(exc)) from None
    probes = preflight(target, hosts, deploys, force=force, remote=remote, note=note)
    data = {FORCE_KEY: "true"} if force else {}

    def run(host: Host) -> HostRun:
        probe = probes[host.name]
        user = probe.user if probe.user != target.ssh_user else None
        if user:
            note(f"{host.name}: {target.ssh_user} cannot log in yet; provisioning as {user}")
        argv = pyinfra_argv(inventory=_inventory(), host=host.name, deploys=deploys, dry=dry, data=data,
                            ssh_user=user)
        result = run_pyinfra(argv, host.name, dry=dry, on_progress=on_progress, env=_pyinfra_env(target))
        if result.ok and not dry and user and "ssh" in deploys and result.noted(NoteKind.ROOT_LOGIN_KEPT):
            result = _finish_ssh(target, host, result, deploys, on_progress, note, remote)
        return result

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        runs = list(pool.map(run, hosts))
    return ProvisionResult(runs)


def _finish_ssh(target: FleetTarget, host: Host, first: HostRun, deploys: Sequence[str],
                on_progress: ProgressFn | None, note: Log, remote: RemoteShell) -> HostRun:
    """A fresh host provisioned as root: once the deploy user works, run the ssh deploy as that user, which
    then disables root login (and the hardening deploy after it, if this run has one: sshd_config changes
    again, and the file-integrity baseline must be renewed after that change, not before it)."""
    check = remote(target.ssh_target(host), "sudo -n true")
    if not check.ok:
        note(f"{host.name}: root login stays on: {target.ssh_user} still cannot log in and sudo "
             f"({check.stderr.strip()[-120:]})")
        return first
    again = tuple(d for d in deploys if d in ("ssh", "hardening"))
    note(f"{host.name}: {target.ssh_user} works now; running {' and '.join(again)} as {target.ssh_user} "
         "to turn root login off")
    argv = pyinfra_argv(inventory=_inventory(), host=host.name, deploys=again)
    second = run_pyinfra(argv, host.name, dry=False, on_progress=on_progress, env=_pyinfra_env(target))
    merged = dict(first.deploys)
    for name, extra in second.deploys.items():
        base = merged.get(name)
        if base is not None:
            extra.changed = base.changed + extra.changed
        merged[name] = extra
    return HostRun(host.name, False, second.ok, merged, error=second.error,
                   seconds=first.seconds + second.seconds, notes=second.notes)
