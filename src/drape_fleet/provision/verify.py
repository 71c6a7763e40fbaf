"""`invoke verify`: run the testinfra suite in tests/host against hosts over SSH.

The suite reads the host (sshd -T, nft -j, docker info, sysctl, ...) and compares it with the fleet file:
it never imports the deploys or the builders, so it checks the host and not our templates.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.config import Host
from drape_fleet.paths import project_root
from drape_fleet.provision.service import FleetTarget

SUITE = "tests/host"
FLEET_ENV = "DRAPE_VERIFY_FLEET_FILE"
ENVIRONMENT_ENV = "DRAPE_VERIFY_ENVIRONMENT"


def ssh_config_text(target: FleetTarget, hosts: Sequence[Host]) -> str:
    """An ssh_config naming each host as the fleet does, for testinfra's ssh:// backend (system ssh, so the
    post-quantum-only key exchange of a hardened host works)."""
    blocks = []
    for host in hosts:
        lines = [f"Host {host.name}", f"  HostName {host.public_address}", f"  User {target.ssh_user}",
                 f"  Port {target.fleet.environment.ssh_port}", "  BatchMode yes", "  ConnectTimeout 10",
                 "  ControlMaster auto", "  ControlPersist 60s", "  ControlPath /tmp/drape-verify-%C"]
        if target.ssh_key is not None:
            lines += [f"  IdentityFile {target.ssh_key}", "  IdentitiesOnly yes"]
        if target.known_hosts is not None:
            lines += [f"  UserKnownHostsFile {target.known_hosts}", "  StrictHostKeyChecking yes"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def pytest_argv(hosts: Sequence[Host], ssh_config: Path, *, workers: int = 0,
                extra: Sequence[str] = ()) -> list[str]:
    argv = [sys.executable, "-m", "pytest", SUITE, "-p", "no:cacheprovider", "-o", "addopts=",
            "--rootdir", str(project_root()), "-q", "-rfEs",
            f"--hosts={','.join(f'ssh://{h.name}' for h in hosts)}", f"--ssh-config={ssh_config}", "--sudo"]
    if workers > 1:
        argv += ["-n", str(workers)]
    return [*argv, *extra]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    returncode: int
    output: str


def run_verify(target: FleetTarget, hosts: Sequence[Host], *, stream: bool = True,
               extra: Sequence[str] = ()) -> VerifyResult:
    with tempfile.TemporaryDirectory(prefix="drape-verify-") as tmp:
        config = Path(tmp) / "ssh_config"
        config.write_text(ssh_config_text(target, hosts))
        argv = pytest_argv(hosts, config, workers=min(len(hosts), 3), extra=extra)
        env = {FLEET_ENV: str(target.fleet_file), ENVIRONMENT_ENV: target.environment}
        import os

        process = subprocess.run(argv, cwd=project_root(), env={**os.environ, **env}, text=True,
                                 capture_output=not stream, check=False)
        output = "" if stream else (process.stdout or "") + (process.stderr or "")
        return VerifyResult(process.returncode == 0, process.returncode, output)
