"""The SSH seam of the reinstall: read the host keys a server presents, and run a command with only pinned keys
accepted. ``OpenSshRemote`` does it with the system's ``ssh-keyscan`` and ``ssh`` (through ``drape_fleet.ssh``'s
target, batch mode, ``StrictHostKeyChecking=yes`` against the given known_hosts file); tests use a fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drape_fleet import shell
from drape_fleet.reinstall.keys import PublicKey, parse_keys
from drape_fleet.ssh import SshTarget

SSH_FAILED = 255
"""ssh's own exit status when it could not connect or authenticate (the command's status otherwise)."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " / ".join(text[-lines:]) or f"exit status {self.returncode}"


class Remote(Protocol):
    def scan(self, address: str, port: int, *, timeout: float) -> list[PublicKey]:
        """The host keys the server presents now (empty when nothing answers)."""

    def run(self, address: str, port: int, known_hosts: Path, command: str, *, timeout: float,
            input: str | None = None) -> CommandResult:
        """Run ``command`` as root, accepting only the keys in ``known_hosts``."""


class OpenSshRemote:
    def __init__(self, identity: Path) -> None:
        self.identity = identity

    def scan(self, address: str, port: int, *, timeout: float) -> list[PublicKey]:
        argv = ["ssh-keyscan", "-T", str(max(1, round(timeout))), "-p", str(port), "-t", "ed25519,ecdsa,rsa", address]
        try:
            result = shell.run(argv, timeout=timeout + 5, check=False)
        except shell.CommandFailed:
            return []
        return parse_keys(result.stdout)

    def run(self, address: str, port: int, known_hosts: Path, command: str, *, timeout: float,
            input: str | None = None) -> CommandResult:
        target = SshTarget(hostname=address, user="root", port=port, key=self.identity, known_hosts=known_hosts)
        try:
            result = shell.run(target.argv(command), timeout=timeout,
                               check=False, input=input)
        except shell.CommandFailed as exc:
            return CommandResult(SSH_FAILED, "", str(exc))
        return CommandResult(result.returncode, result.stdout, result.stderr)
