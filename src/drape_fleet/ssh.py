"""The SSH seam for everything that is not pyinfra: status checks, lab setup, tests' independent probes.

System ``ssh`` in batch mode (never prompts), with a connect timeout and pinned host keys when a
known_hosts file is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drape_fleet import shell


@dataclass(frozen=True)
class SshTarget:
    hostname: str
    user: str = "root"
    port: int = 22
    key: Path | None = None
    known_hosts: Path | None = None

    def argv(self, command: str, *, connect_timeout: float = 5.0) -> list[str]:
        options = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, round(connect_timeout))}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
        ]
        if self.known_hosts is not None:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if self.key is not None:
            options += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return ["ssh", *options, "-p", str(self.port), f"{self.user}@{self.hostname}", command]


def ssh_run(target: SshTarget, command: str, *, timeout: float = 30.0, check: bool = True,
            input: str | None = None) -> shell.Result:
    return shell.run(target.argv(command, connect_timeout=min(timeout, 10.0)), timeout=timeout, check=check,
                     input=input)
