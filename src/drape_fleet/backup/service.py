"""What `invoke backup.*` does, as library calls tests make too.

Sources are ``ops`` (this machine's items: the PKI) and the fleet's hosts. Backups, restores and drills of a
host's items run on that host (its data is there); listing and checking any repository run from here, so
they work while the host is gone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drape_fleet import hostkeys, shell
from drape_fleet.backup import agent, keys
from drape_fleet.backup.agent import BackupError, agent_args
from drape_fleet.backup.plan import HOST_KEY, OPS_SOURCE, Access, items_for, known_hosts_path, settings_of, target_ssh
from drape_fleet.environments import FleetTarget
from drape_fleet.ssh import scan_host_keys, ssh_run

Log = Callable[[str], None]


@dataclass
class Outcome:
    """One source's answer, or its error."""

    source: str
    answer: dict[str, Any] = field(default_factory=dict)
    error: BackupError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.answer.get("ok", True) is not False


def sources_of(target: FleetTarget, hosts: Sequence[str], ops: bool) -> list[str]:
    """The sources asked for; unknown hosts fail here with the known ones listed."""
    for name in hosts:
        target.fleet.host(name)
    return ([OPS_SOURCE] if ops else []) + list(hosts)


def _each(sources: Sequence[str], call: Callable[[str], dict[str, Any]]) -> list[Outcome]:
    def one(source: str) -> Outcome:
        try:
            return Outcome(source, call(source))
        except BackupError as exc:
            return Outcome(source, exc.result, exc)

    with ThreadPoolExecutor(max_workers=max(1, len(sources))) as pool:
        return list(pool.map(one, sources))


def _where(target: FleetTarget, source: str, args: list[str]) -> dict[str, Any]:
    """Run the agent where ``source``'s data lives: here for ops, on the host otherwise."""
    if source == OPS_SOURCE:
        return agent.here(target, source, args)
    return agent.on_host(target, source, args)


# -- first setup ------------------------------------------------------------------------------------------------

def host_key_line(target: FleetTarget, host: str) -> str:
    entry = target.fleet.host(host)
    result = ssh_run(target.ssh_target(entry), f"sudo -n cat {HOST_KEY}.pub", timeout=30, check=False)
    if not result.ok or not result.stdout.startswith("ssh-"):
        raise BackupError("not-deployed", f"{host}: no backup key on the host. Fix: `invoke provision --host {host} "
                          "--only backup` first")
    return result.stdout.strip()


def authorized_keys(admin: str, hosts: dict[str, str]) -> str:
    """The target account's authorized_keys (pure): the ops admin key and each host's own key."""
    lines = ["# Managed by drape-fleet (invoke backup.init): the ops admin key and every host's backup key.",
             admin.strip()]
    lines += [hosts[name].strip() for name in sorted(hosts)]
    return "\n".join(lines) + "\n"


def sftp_batch(target: FleetTarget, commands: Sequence[str], *, timeout: float = 60) -> shell.Result:
    """Run sftp batch ``commands`` against the target with the admin key (the target's key pinned)."""
    settings = settings_of(target.fleet)
    key = keys.admin_key(target.env)
    ssh = target_ssh(settings.target, Access(str(key), str(known_hosts_path(target.env.fleet_file, settings.target))))
    argv = ["sftp", *ssh.ssh_args()[1:], "-b", "-", ssh.hostname]
    return shell.run(argv, input="\n".join(commands) + "\n", timeout=timeout, check=False)


def init(target: FleetTarget, log: Log) -> list[Outcome]:
    """Authorize every host's key on the target, then make each repository that is missing."""
    settings = settings_of(target.fleet)
    pinned = known_hosts_path(target.env.fleet_file, settings.target)
    if not pinned.is_file():
        raise BackupError("not-pinned", f"{pinned}: the target's host key is not pinned. Fix: `invoke backup.trust`")
    key, made = keys.ensure_admin_key(target.env)
    if made:
        log(f"made the admin key {key}: put {key}.pub on the target (Storage Box: Console → SSH keys), "
            "then run this again")
    hosts: dict[str, str] = {}
    unreadable: list[Outcome] = []
    for name in target.fleet.host_names:  # a host that is down does not stop the others
        try:
            hosts[name] = host_key_line(target, name)
        except BackupError as exc:
            unreadable.append(Outcome(name, error=exc))
    text = authorized_keys(key.with_suffix(".pub").read_text(), hosts)
    with tempfile.NamedTemporaryFile("w", suffix=".authorized_keys") as handle:
        handle.write(text)
        handle.flush()
        result = sftp_batch(target, ["-mkdir .ssh", "chmod 700 .ssh", f"put {handle.name} .ssh/authorized_keys",
                                     "chmod 600 .ssh/authorized_keys"])
    if not result.ok:
        raise BackupError("not-authorized", f"cannot write the target's authorized_keys with {key}: "
                          f"{result.stderr.strip()[-300:]}. Fix: put {key}.pub on the target first")
    log(f"target {settings.target.host}: authorized the admin key and {len(hosts)} host key(s)")
    repositories = _each([OPS_SOURCE, *target.fleet.host_names], lambda s: agent.here(target, s, ["init"]))
    return repositories + unreadable


def trust(target: FleetTarget, fingerprint: str | None, confirm: Callable[[str], bool]) -> Path:
    """Pin the target's ed25519 host key next to the fleet file, after it matches ``fingerprint`` or ops confirm."""
    settings = settings_of(target.fleet)
    host, port = settings.target.host, settings.target.port
    names = hostkeys.host_names(host, host, port)
    scanned = hostkeys.from_scan(scan_host_keys(host, port), names)
    if not scanned:
        raise BackupError("unreachable", f"{host}:{port} offered no ed25519 host key (unreachable?)")
    key = scanned[0]
    if fingerprint is not None:
        if hostkeys.normalise_fingerprint(fingerprint) != key.fingerprint:
            raise BackupError("host-key", f"{host}:{port} offers {key.fingerprint}, not {fingerprint}: refusing "
                              "to pin it (someone may be in between). Nothing was written")
    elif not confirm(f"{host}:{port} offers {key.fingerprint}: is that the target's key?"):
        raise BackupError("not-confirmed", "not pinned: compare the fingerprint with the provider's first")
    path = known_hosts_path(target.env.fleet_file, settings.target)
    current = path.read_text() if path.exists() else ""
    path.write_text(hostkeys.with_key(current, key))
    return path


# -- the daily work ---------------------------------------------------------------------------------------------

def run(target: FleetTarget, sources: Sequence[str], item: str | None = None) -> list[Outcome]:
    return _each(sources, lambda s: _where(target, s, agent_args("run", item=item)))


def snapshots(target: FleetTarget, sources: Sequence[str], item: str | None = None) -> list[Outcome]:
    """Every source's snapshots, read from here (works while a host is gone)."""
    return _each(sources, lambda s: agent.here(target, s, agent_args("snapshots", item=item)))


def check(target: FleetTarget, sources: Sequence[str]) -> list[Outcome]:
    return _each(sources, lambda s: agent.here(target, s, ["check"]))


def drill(target: FleetTarget, sources: Sequence[str], item: str | None = None) -> list[Outcome]:
    return _each(sources, lambda s: _where(target, s, agent_args("drill", item=item)))


def restore(target: FleetTarget, source: str, item: str, at: str, *, force: bool = False,
            dry_run: bool = False) -> dict[str, Any]:
    """Restore ``item`` of ``source`` as it was at ``at``; refuses (BackupError ``newer-data``) when the live data
    has changes after that snapshot, unless ``force`` (the current data is then kept aside, not deleted)."""
    names = [i.name for i in items_for(source)]
    if item not in names:
        raise BackupError("unknown-item", f"{source} backs up no item {item!r} (it backs up: {', '.join(names)})")
    return _where(target, source, agent_args("restore", item=item, at=at, force=force, dry_run=dry_run))
