"""`invoke hosts.trust`: first contact with a host, made explicit (drape_fleet.provision.trust)."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.config import Host
from drape_fleet.console import console, fail
from drape_fleet.hostkeys import BadHostKey, HostKey
from drape_fleet.provision.trust import TrustRefused, trust_host
from drape_fleet.tasks.common import ENV_HELP, hosts_of


@task(help={"host": "host whose key to pin (repeatable)", "all": "every host of the fleet",
            "fingerprint": "the SHA256 fingerprint the host must offer (from the rescue activation or the "
                           "console); only with one --host",
            "yes": "pin what the host offers without asking (only where you trust the network path)",
            "env": ENV_HELP}, iterable=["host"])
def trust(c: Context, host: list[str] | None = None, all: bool = False, fingerprint: str = "", yes: bool = False,
          env: str = "") -> None:
    """Pin a host's SSH key: show its fingerprint, compare it with --fingerprint, then write known_hosts."""
    target, hosts = hosts_of(env, host or [], all)
    if fingerprint and len(hosts) != 1:
        fail("--fingerprint belongs to one host: give exactly one --host with it")

    def confirm(entry: Host, key: HostKey) -> bool:
        console.print(f"{entry.name} ({entry.public_address}) offers {key.key_type} {key.fingerprint}")
        if yes:
            return True
        if not console.is_terminal:
            return False
        answer = input("compare it with the fingerprint from a trusted path; type 'yes' to pin it: ")
        return answer.strip() == "yes"

    refused = []
    for entry in hosts:
        try:
            trusted = trust_host(target, entry, expected=fingerprint or None, confirm=confirm)
        except (TrustRefused, BadHostKey) as exc:
            refused.append(f"{entry.name}: {exc}")
            continue
        console.print(f"[green]{trusted.host}[/green] {trusted.outcome}: {trusted.fingerprint} "
                      f"({target.env.known_hosts})")
    if refused:
        fail("\n".join(refused))
