"""The container runtime's own updates (Docker, containerd, runc), with the drain they need.

unattended-upgrades holds these packages back (their update restarts the engine under every preview; see the
distro profiles' ``runtime_packages``). `invoke hosts.upgrade-runtime` applies them one host at a time:
what is pending is read from apt's own simulation on the host; then the host is cordoned and drained through
the runtime (idle previews stop, the rest move), the packages are upgraded, Docker must answer again, and the
host is uncordoned. A kernel or libc update that wants a reboot is reported, for ops to schedule.

Pure parts (the commands, apt's simulation parsed) are tested exactly; ``upgrade_runtime`` takes its remote
shell and the runtime's drain/uncordon as arguments, so the sequence is tested without a fleet.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drape_fleet.console import Log

INSTALLED = ("dpkg-query -W -f '${{Package}} ${{Status}}\\n' {packages} 2>/dev/null "
             "| awk '$4 == \"installed\" {{ print $1 }}'")
SIMULATE = "apt-get -s -o Debug::NoLocking=1 install --only-upgrade {packages}"
_INST = re.compile(r"^Inst (?P<name>\S+) \[(?P<old>[^\]]+)\] \((?P<new>\S+)")


@dataclass(frozen=True)
class Pending:
    package: str
    installed: str
    candidate: str

    def describe(self) -> str:
        return f"{self.package} {self.installed} -> {self.candidate}"


def installed_command(packages: Sequence[str]) -> str:
    return INSTALLED.format(packages=shlex.join(packages))


def simulate_command(packages: Sequence[str]) -> str:
    return "sudo apt-get update -qq && " + SIMULATE.format(packages=shlex.join(packages))


def parse_simulation(text: str) -> list[Pending]:
    """``apt-get -s`` output: the packages it would upgrade (``Inst name [old] (new ...)``)."""
    return [Pending(m["name"], m["old"], m["new"]) for line in text.splitlines() if (m := _INST.match(line))]


def upgrade_command(pending: Sequence[Pending]) -> str:
    names = shlex.join(p.package for p in pending)
    return (f"sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade "
            f"-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {names} && "
            "sudo systemctl restart docker.service && "
            "for i in $(seq 60); do sudo docker info >/dev/null 2>&1 && exit 0; sleep 1; done; "
            "echo 'Docker did not answer within 60 s of the upgrade' >&2; exit 1")


REBOOT_REQUIRED = "cat /var/run/reboot-required.pkgs 2>/dev/null || true"


class UpgradeFailed(RuntimeError):
    """The upgrade stopped; the message says where the host is left (cordoned or not) and what to do."""


@dataclass(frozen=True)
class UpgradeOutcome:
    host: str
    upgraded: tuple[Pending, ...]
    reboot_for: tuple[str, ...]


Remote = Callable[[str], tuple[bool, str]]
"""Run a shell command on the host: (ok, output)."""


def upgrade_runtime(host: str, runtime_packages: Sequence[str], remote: Remote, *, drain: Callable[[str], None],
                    uncordon: Callable[[str], None], note: Log, dry: bool = False) -> UpgradeOutcome:
    ok, installed = remote(installed_command(runtime_packages))
    packages = installed.split() if ok else []
    if not packages:
        raise UpgradeFailed(f"{host}: none of the runtime packages ({', '.join(runtime_packages)}) is installed, "
                            f"or dpkg could not be asked ({installed.strip()[-200:]})")
    ok, simulation = remote(simulate_command(packages))
    if not ok:
        raise UpgradeFailed(f"{host}: apt could not tell what is pending: {simulation.strip()[-300:]}")
    pending = parse_simulation(simulation)
    if not pending:
        note(f"{host}: the container runtime is up to date ({', '.join(packages)})")
        return UpgradeOutcome(host, (), ())
    note(f"{host}: pending: " + "; ".join(p.describe() for p in pending))
    if dry:
        return UpgradeOutcome(host, tuple(pending), ())
    note(f"{host}: cordoning and draining through the runtime before Docker restarts")
    drain(host)
    ok, output = remote(upgrade_command(pending))
    if not ok:
        raise UpgradeFailed(f"{host}: the upgrade failed and the host stays cordoned (`invoke fleet.uncordon --host "
                            f"{host}` once Docker is healthy): {output.strip()[-400:]}")
    uncordon(host)
    _, reboot = remote(REBOOT_REQUIRED)
    reboot_for = tuple(reboot.split())
    if reboot_for:
        note(f"{host}: a reboot is wanted (for {', '.join(reboot_for)}): drain it and reboot in a quiet hour")
    return UpgradeOutcome(host, tuple(pending), reboot_for)
