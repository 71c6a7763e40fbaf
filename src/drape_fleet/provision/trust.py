"""First contact with a host, made explicit (`invoke hosts.trust`): read the key it offers, show its
fingerprint, compare it with the one expected (from a trusted path: Hetzner's rescue activation, the
server's console) when given, and only then pin it in the environment's known_hosts file.

A key that differs from the pinned one is refused unless the expected fingerprint vouches for the new one
(a reinstalled server has a new key; so does a machine in the middle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from drape_fleet import hostkeys
from drape_fleet.config import Host
from drape_fleet.environments import FleetTarget
from drape_fleet.shell import CommandFailed
from drape_fleet.ssh import scan_host_keys

KEY_TYPE = "ssh-ed25519"
"""The only host key a provisioned host offers (sshd_config: HostKeyAlgorithms ssh-ed25519)."""

Scan = Callable[[str, int], Sequence[str]]
Confirm = Callable[[Host, hostkeys.HostKey], bool]


class TrustRefused(RuntimeError):
    """The key was not pinned; the message says why and what to do. Nothing was written."""


@dataclass(frozen=True)
class Trusted:
    host: str
    fingerprint: str
    outcome: Literal["pinned", "replaced", "already pinned"]


def _scan(address: str, port: int) -> Sequence[str]:
    try:
        return scan_host_keys(address, port, key_type="ed25519")
    except CommandFailed as exc:
        raise TrustRefused(f"cannot read {address}'s host key: {exc}. Fix: install openssh-client") from None


def trust_host(target: FleetTarget, host: Host, *, expected: str | None, confirm: Confirm,
               scan: Scan = _scan) -> Trusted:
    """Pin ``host``'s ed25519 key in ``target``'s known_hosts (see the module's rules)."""
    port = target.fleet.environment.ssh_port
    address = str(host.public_address)
    names = hostkeys.host_names(host.name, address, port)
    offered = [k for k in hostkeys.from_scan(scan(address, port), names) if k.key_type == KEY_TYPE]
    if not offered:
        raise TrustRefused(f"{host.name} ({address}:{port}) offered no {KEY_TYPE} host key (ssh-keyscan got "
                           "none). Fix: check that the host is up, its address in the fleet file and the port")
    key = offered[0]
    if expected is not None and hostkeys.normalise_fingerprint(expected) != key.fingerprint:
        raise TrustRefused(f"{host.name} offers {key.fingerprint}, not the expected "
                           f"{hostkeys.normalise_fingerprint(expected)}: do not connect. Either the fingerprint "
                           "given is not this server's, or something between you and it answers instead")
    known_hosts = target.env.known_hosts
    current = [k for k in hostkeys.pinned(hostkeys.read(known_hosts), names[0]) if k.key_type == KEY_TYPE]
    if current and all(k.key == key.key for k in current):
        return Trusted(host.name, key.fingerprint, "already pinned")
    if current and expected is None:
        raise TrustRefused(f"{host.name}'s pinned key ({current[0].fingerprint}) differs from the one it offers "
                           f"now ({key.fingerprint}). A reinstalled server has a new key, and so does a machine "
                           "in the middle. Fix: get the new fingerprint from a trusted path (the rescue "
                           f"activation, the server's console) and pass it: --fingerprint {key.fingerprint}")
    if expected is None and not confirm(host, key):
        raise TrustRefused(f"{host.name}'s key was not confirmed; nothing was written (answer yes on a "
                           "terminal, or pass --fingerprint)")
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    text = known_hosts.read_text() if known_hosts.exists() else ""
    known_hosts.write_text(hostkeys.with_key(text, key))
    return Trusted(host.name, key.fingerprint, "replaced" if current else "pinned")
