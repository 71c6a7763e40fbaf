"""Checks made before any host is touched: unknown hosts, a missing TLS CA, a missing SSH key or unpinned
host key, an unreachable host, an admin allowlist that would lock ops out, a degraded RAID. (The address plan
is checked when the fleet file loads.)

Each refusal says what is wrong and how to fix it. The SSH side goes through one seam (``RemoteShell``),
so tests can hand in a host's answers (a degraded /proc/mdstat, say) without a host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from drape_fleet import hostkeys, shell
from drape_fleet.config import FleetConfig, Host
from drape_fleet.environments import FleetTarget
from drape_fleet.pki.authority import PkiError, init_ca, issue_client, issue_host, migrate_layout
from drape_fleet.pki.paths import ca_files, pki_dir
from drape_fleet.provision.firewall import FirewallRefused, check_ops_address, firewall_policy
from drape_fleet.provision.storage import parse_mdstat, raid_verdict
from drape_fleet.ssh import SshTarget, ssh_run


class ProvisionRefused(RuntimeError):
    """Provisioning will not start; nothing was changed on any host."""


RemoteShell = Callable[[SshTarget, str], shell.Result]


def default_remote(target: SshTarget, command: str) -> shell.Result:
    return ssh_run(target, command, timeout=25, check=False)


def resolve_hosts(fleet: FleetConfig, names: Sequence[str], every: bool) -> list[Host]:
    if every and names:
        raise ProvisionRefused("give either --host NAME or --all, not both")
    if every:
        return list(fleet.hosts)
    if not names:
        raise ProvisionRefused(f"say which host: --host NAME (one of {', '.join(fleet.host_names)}) or --all")
    unknown = [n for n in names if n not in fleet.host_names]
    if unknown:
        raise ProvisionRefused(f"unknown host {', '.join(repr(n) for n in unknown)}: this fleet "
                               f"({fleet.environment.name}) has {', '.join(fleet.host_names)}")
    return [fleet.host(n) for n in names]


def check_ssh_files(target: FleetTarget, hosts: Sequence[Host]) -> None:
    """The one key ops offer exists, and every host's key is pinned: first contact is `invoke hosts.trust`,
    never a connection that accepts whatever key it is shown."""
    env = target.env
    if not env.ssh_key.exists():
        fix = ("run `invoke lab.up`" if env.is_lab else "set $DRAPE_SSH_KEY to the private key (or the .pub of "
               "an agent's key) that the hosts' authorized_keys hold")
        raise ProvisionRefused(f"the SSH key {env.ssh_key} does not exist. Fix: {fix}")
    pinned = hostkeys.read(env.known_hosts)
    port = target.fleet.environment.ssh_port
    unpinned = [h.name for h in hosts
                if not hostkeys.pinned(pinned, hostkeys.lookup_name(str(h.public_address), port))]
    if unpinned:
        fix = ("run `invoke lab.up`, which pins them" if env.is_lab else
               f"`invoke hosts.trust --host {unpinned[0]} [--fingerprint SHA256:...]` for each, which shows the "
               "key and pins it once you (or the expected fingerprint) confirm it")
        raise ProvisionRefused(f"no pinned host key for {', '.join(unpinned)} in {env.known_hosts}. Fix: {fix}")


@dataclass(frozen=True)
class PkiReport:
    directory: Path
    notes: tuple[str, ...]


def ensure_pki(fleet: FleetConfig, hosts: Sequence[Host], *, create_ca: bool) -> PkiReport:
    """The CA must exist (the lab makes its own); host certificates are issued or renewed as needed."""
    directory = pki_dir(fleet.environment.name)
    try:
        notes = [f"pki layout: {line}" for line in migrate_layout(directory)]
    except PkiError as exc:
        raise ProvisionRefused(str(exc)) from None
    ca_cert, _ = ca_files(directory)
    if not ca_cert.exists():
        if not create_ca:
            raise ProvisionRefused(f"missing TLS CA: {ca_cert} does not exist, so the Docker API cannot get its "
                                   "certificates. Fix: run `invoke pki.init` (or set DRAPE_PKI_DIR to the "
                                   "directory that holds ca.pem)")
        try:
            init_ca(directory, allow_in_repo=True)
        except PkiError as exc:
            raise ProvisionRefused(str(exc)) from None
        notes.append(f"made a lab CA in {directory}")
    try:
        for host in hosts:
            issued = issue_host(directory, host.name, [str(host.private_address), str(host.public_address)])
            if issued.created:
                notes.append(f"issued {host.name}'s server certificate ({issued.reason})")
        if create_ca:
            client = issue_client(directory)
            if client.created:
                notes.append(f"issued the backend's client certificate ({client.reason})")
    except PkiError as exc:
        raise ProvisionRefused(str(exc)) from None
    return PkiReport(directory, tuple(notes))


# ---------------------------------------------------------------------------------------------------
# Over SSH: reachability, the address ops come from, RAID
# ---------------------------------------------------------------------------------------------------

PROBE = 'echo "client=${SSH_CONNECTION%% *}"; echo "---mdstat---"; cat /proc/mdstat 2>/dev/null; true'


@dataclass(frozen=True)
class HostProbe:
    host: str
    user: str
    client_address: str
    mdstat: str


def parse_probe(host: str, user: str, output: str) -> HostProbe:
    head, _, mdstat = output.partition("---mdstat---\n")
    client = ""
    for line in head.splitlines():
        if line.startswith("client="):
            client = line.removeprefix("client=").strip()
    return HostProbe(host, user, client, mdstat)


def probe_host(target: SshTarget, host: Host, remote: RemoteShell, *, fallback_user: str | None = "root") -> HostProbe:
    """Reach the host as ``target.user``; on a fresh server the deploy user does not exist yet, so try root."""
    result = remote(target, PROBE)
    if result.ok:
        return parse_probe(host.name, target.user, result.stdout)
    first_error = (result.stderr.strip() or f"ssh exited {result.returncode}").splitlines()[-1]
    if fallback_user and fallback_user != target.user and "Permission denied" in result.stderr:
        retry = remote(target.as_user(fallback_user), PROBE)
        if retry.ok:
            return parse_probe(host.name, fallback_user, retry.stdout)
    raise ProvisionRefused(
        f"{host.name} is unreachable: ssh {target.user}@{target.hostname} -p {target.port} failed ({first_error}). "
        "Fix: check that the host is up and its address in the fleet file, that your key is loaded, and that "
        "its host key is pinned; nothing was changed")


def check_probe(fleet: FleetConfig, probe: HostProbe, *, check_firewall: bool, force: bool) -> list[str]:
    """Refuse a lock-out or a degraded RAID; return notes (e.g. a forced RAID) to show ops."""
    notes: list[str] = []
    if check_firewall:
        if not probe.client_address:
            raise ProvisionRefused(f"{probe.host}: cannot tell which address you connect from ($SSH_CONNECTION is "
                                   "empty), so the firewall cannot be checked against lock-out")
        try:
            check_ops_address(firewall_policy(fleet, probe.host), ip_address(probe.client_address))
        except FirewallRefused as exc:
            raise ProvisionRefused(str(exc)) from None
    verdict = raid_verdict(parse_mdstat(probe.mdstat), fleet.provisioning.storage, force=force)
    if not verdict.ok:
        raise ProvisionRefused(f"{probe.host}: {verdict.message}")
    if verdict.forced:
        notes.append(f"{probe.host}: {verdict.message}")
    return notes
