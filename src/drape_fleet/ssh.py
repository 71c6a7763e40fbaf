"""The SSH seam: one target type from which every SSH invocation of the project is derived.

pyinfra's connector, preflight, `invoke verify`'s ssh_config, the lab's status and setup, the deploy that
probes a new deploy user, and tests all reach hosts through ``SshTarget``, so they share one host-key
policy and one set of timeouts:

- host keys are pinned: ``StrictHostKeyChecking yes`` against the environment's own known_hosts file (and no
  other), never ``accept-new``; first contact is the explicit `invoke hosts.trust` (or the lab's lab.up);
- only the configured key is offered (``IdentitiesOnly``): sshd allows 3 attempts (MaxAuthTries), and an
  agent holding many keys would be refused before it got to the right one;
- batch mode (never a prompt), a 10 s connection timeout, and a dead connection noticed within a minute.

System ``ssh`` (OpenSSH), because hardened hosts offer only post-quantum key exchanges that paramiko lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drape_fleet import shell

CONNECT_TIMEOUT_S = 10
SERVER_ALIVE_INTERVAL_S = 15
SERVER_ALIVE_COUNT_MAX = 4

Option = tuple[str, str]


@dataclass(frozen=True)
class SshTarget:
    """One host as ops reach it: address, user, port, the one key offered, and the file that pins its key."""

    hostname: str
    user: str
    key: Path
    known_hosts: Path
    port: int = 22
    alias: str | None = None
    """The host's name in the fleet (``ax1``): the ``Host`` of an ssh_config block."""

    def as_user(self, user: str) -> SshTarget:
        return dataclasses.replace(self, user=user)

    def options(self) -> list[Option]:
        """Every ssh_config keyword and value, in a fixed order (pure: tested exactly)."""
        return [
            ("User", self.user),
            ("Port", str(self.port)),
            ("IdentityFile", str(self.key)),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", str(self.known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("StrictHostKeyChecking", "yes"),
            ("UpdateHostKeys", "no"),
            ("BatchMode", "yes"),
            ("ConnectTimeout", str(CONNECT_TIMEOUT_S)),
            ("ServerAliveInterval", str(SERVER_ALIVE_INTERVAL_S)),
            ("ServerAliveCountMax", str(SERVER_ALIVE_COUNT_MAX)),
            ("LogLevel", "ERROR"),
        ]

    def ssh_args(self, extra: Sequence[Option] = ()) -> list[str]:
        """``ssh -o Key=value ...`` without the destination: for callers that add flags of their own."""
        args = ["ssh"]
        for keyword, value in [*self.options(), *extra]:
            args += ["-o", f"{keyword}={value}"]
        return args

    def argv(self, command: str, extra: Sequence[Option] = ()) -> list[str]:
        return [*self.ssh_args(extra), self.hostname, command]

    def config_block(self, extra: Sequence[Option] = ()) -> str:
        """The same options as an ssh_config ``Host`` block (for testinfra, and ``ssh -F`` by hand)."""
        names = f"{self.alias} {self.hostname}" if self.alias and self.alias != self.hostname else self.hostname
        lines = [f"Host {names}", f"  HostName {self.hostname}"]
        lines += [f"  {keyword} {value}" for keyword, value in [*self.options(), *extra]]
        return "\n".join(lines) + "\n"


def ssh_config(targets: Sequence[SshTarget], extra: Sequence[Option] = ()) -> str:
    return "\n".join(target.config_block(extra) for target in targets)


def ssh_run(target: SshTarget, command: str, *, timeout: float = 30.0, check: bool = True,
            input: str | None = None) -> shell.Result:
    """Run ``command`` on the host; ``timeout`` bounds the whole call, connection included."""
    return shell.run(target.argv(command), timeout=timeout, check=check, input=input)


def scan_host_keys(hostname: str, port: int = 22, key_type: str = "ed25519") -> list[str]:
    """The host's public keys of ``key_type`` as it offers them now (``ssh-keyscan``), as known_hosts lines.

    Unauthenticated by nature: what it returns is only trusted after its fingerprint is compared with one from
    a trusted path (the Robot rescue activation, the console), or confirmed by ops (`invoke hosts.trust`)."""
    result = shell.run(["ssh-keyscan", "-T", str(CONNECT_TIMEOUT_S), "-t", key_type, "-p", str(port), hostname],
                       timeout=CONNECT_TIMEOUT_S + 5, check=False)
    return [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
