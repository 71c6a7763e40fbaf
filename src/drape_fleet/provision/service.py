"""`invoke provision` as a library call: choose the fleet, check everything before touching a host, run the
deploys on every chosen host in parallel (one pyinfra process each), and finish a fresh host's SSH hardening
once its deploy user is proven."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drape_fleet.config import FleetConfig, Host
from drape_fleet.paths import project_root
from drape_fleet.provision.context import FORCE_KEY
from drape_fleet.provision.preflight import (
    HostProbe,
    ProvisionRefused,
    RemoteShell,
    check_probe,
    default_remote,
    ensure_pki,
    probe_host,
    resolve_hosts,
)
from drape_fleet.provision.runner import HostRun, ProgressFn, pyinfra_argv, run_pyinfra, select_deploys
from drape_fleet.ssh import SshTarget


@dataclass(frozen=True)
class FleetTarget:
    """A fleet and how to reach it: what the inventories in inventories/ are built from."""

    environment: str
    fleet: FleetConfig
    fleet_file: Path
    inventory: Path
    ssh_user: str
    ssh_key: Path | None = None
    known_hosts: Path | None = None

    def ssh_target(self, host: Host, user: str | None = None) -> SshTarget:
        return SshTarget(hostname=str(host.public_address), user=user or self.ssh_user,
                         port=self.fleet.environment.ssh_port, key=self.ssh_key, known_hosts=self.known_hosts)

    @property
    def pyinfra_env(self) -> dict[str, str]:
        return {} if self.environment == "lab" else {"DRAPE_FLEET_FILE": str(self.fleet_file)}


def fleet_target(environment: str) -> FleetTarget:
    """The lab (as `invoke lab.up` left it) or production (config/production.toml, or $DRAPE_FLEET_FILE)."""
    if environment == "lab":
        from drape_fleet.lab.state import lab_connection, load_lab_fleet

        fleet, fleet_file = load_lab_fleet()
        conn = lab_connection()
        return FleetTarget("lab", fleet, fleet_file, project_root() / "inventories" / "lab.py",
                           ssh_user=conn["ssh_user"], ssh_key=conn["ssh_key"], known_hosts=conn["known_hosts"])
    if environment == "production":
        from drape_fleet.production import load_production_fleet, production_connection

        fleet, fleet_file = load_production_fleet()
        conn = production_connection(fleet)
        return FleetTarget("production", fleet, fleet_file, project_root() / "inventories" / "production.py",
                           ssh_user=conn["ssh_user"], known_hosts=conn["known_hosts"])
    raise ProvisionRefused(f"unknown environment {environment!r}: use --env production or --env lab")


def default_environment() -> str:
    return os.environ.get("DRAPE_ENV", "production")


@dataclass
class ProvisionResult:
    runs: list[HostRun]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)


NoteFn = Callable[[str], None]


def preflight(target: FleetTarget, hosts: Sequence[Host], deploys: Sequence[str], *, force: bool,
              remote: RemoteShell = default_remote, note: NoteFn = lambda _: None) -> dict[str, HostProbe]:
    """Everything that can refuse, for every host, before any host is changed."""
    if "docker" in deploys:
        report = ensure_pki(target.fleet, hosts, create_ca=target.environment == "lab")
        for line in report.notes:
            note(f"pki: {line}")

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
    return {probe.host: probe for probe in outcomes if isinstance(probe, HostProbe)}


def provision(target: FleetTarget, names: Sequence[str] = (), *, every: bool = False, only: str = "",
              dry: bool = False, force: bool = False, on_progress: ProgressFn | None = None,
              note: NoteFn = lambda _: None, remote: RemoteShell = default_remote) -> ProvisionResult:
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
        argv = pyinfra_argv(inventory=target.inventory, host=host.name, deploys=deploys, dry=dry, data=data,
                            ssh_user=user)
        result = run_pyinfra(argv, host.name, dry=dry, on_progress=on_progress, env=target.pyinfra_env)
        if result.ok and not dry and user and "ssh" in deploys and any("KEPT" in w for w in result.warnings):
            result = _finish_ssh(target, host, result, on_progress, note, remote)
        return result

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        runs = list(pool.map(run, hosts))
    return ProvisionResult(runs)


def _finish_ssh(target: FleetTarget, host: Host, first: HostRun, on_progress: ProgressFn | None, note: NoteFn,
                remote: RemoteShell) -> HostRun:
    """A fresh host provisioned as root: once the deploy user works, run the ssh deploy as that user, which
    then disables root login."""
    check = remote(target.ssh_target(host), "sudo -n true")
    if not check.ok:
        note(f"{host.name}: root login stays on: {target.ssh_user} still cannot log in and sudo "
             f"({check.stderr.strip()[-120:]})")
        return first
    note(f"{host.name}: {target.ssh_user} works now; running the ssh deploy as {target.ssh_user} "
         "to turn root login off")
    argv = pyinfra_argv(inventory=target.inventory, host=host.name, deploys=("ssh",))
    second = run_pyinfra(argv, host.name, dry=False, on_progress=on_progress, env=target.pyinfra_env)
    merged = dict(first.deploys)
    if "ssh" in second.deploys:
        base = merged.get("ssh")
        extra = second.deploys["ssh"]
        if base is not None:
            extra.changed = base.changed + extra.changed
        merged["ssh"] = extra
    return HostRun(host.name, False, second.ok, merged, error=second.error,
                   seconds=first.seconds + second.seconds, warnings=second.warnings)
