"""`invoke hosts.trust`: first contact with a host, made explicit (drape_fleet.provision.trust);
`invoke hosts.upgrade-runtime`: Docker, containerd and runc updated with a drain (drape_fleet.provision.maintenance)."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.config import Host
from drape_fleet.console import console, fail, say
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


@task(help={"host": "host to upgrade (repeatable)", "all": "every host, one at a time",
            "dry": "show what is pending, change nothing",
            "idle_minutes": "drain: stop a preview once idle this long (default 5)",
            "deadline_minutes": "drain: then move what is left to other hosts (default 30)", "env": ENV_HELP},
      iterable=["host"], name="upgrade-runtime")
def upgrade_runtime(c: Context, host: list[str] | None = None, all: bool = False, dry: bool = False,
                    idle_minutes: float = 5, deadline_minutes: float = 30, env: str = "") -> None:
    """Apply the container runtime's pending updates (held back from unattended upgrades), one host at a time:
    cordon and drain through the runtime, upgrade, wait for Docker, uncordon."""
    from drape_fleet.provision.distro import load_profile
    from drape_fleet.provision.maintenance import UpgradeFailed
    from drape_fleet.provision.maintenance import upgrade_runtime as upgrade
    from drape_fleet.runtime.errors import RuntimeFailure
    from drape_fleet.runtime.service import PreviewRuntime
    from drape_fleet.ssh import ssh_run

    target, hosts = hosts_of(env, host or [], all)
    packages = sorted({p for distro in ("debian-12", "ubuntu-22.04", "ubuntu-24.04")
                       for p in load_profile(distro).upgrades.runtime_packages})
    runtime = None if dry else PreviewRuntime.connect(target.fleet, background=True)

    def drain(name: str) -> None:
        assert runtime is not None
        report = runtime.drain(name, idle_s=idle_minutes * 60, deadline_s=deadline_minutes * 60, progress=say)
        if not report.done:
            raise UpgradeFailed(f"{name}: {report.remaining} preview(s) could not be moved; the host stays "
                                "cordoned and was not upgraded")

    def uncordon(name: str) -> None:
        assert runtime is not None
        runtime.uncordon(name)

    try:
        for entry in hosts:
            def remote(command: str, entry: Host = entry) -> tuple[bool, str]:
                result = ssh_run(target.ssh_target(entry), command, timeout=900, check=False)
                return result.ok, result.stdout + result.stderr

            outcome = upgrade(entry.name, packages, remote, drain=drain, uncordon=uncordon, note=say, dry=dry)
            if outcome.upgraded and not dry:
                console.print(f"[green]{entry.name}[/green]: upgraded "
                              + ", ".join(p.describe() for p in outcome.upgraded))
    except (UpgradeFailed, RuntimeFailure, KeyError) as exc:
        fail(str(exc))
    finally:
        if runtime is not None:
            runtime.close()
