"""`invoke verify`: run the testinfra suite in tests/host against hosts over SSH.

The suite reads the host (sshd -T, nft -j, docker info, sysctl, ...) and compares it with the fleet file:
it never imports the deploys or the builders, so it checks the host and not our templates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.config import Host
from drape_fleet.environments import FleetTarget
from drape_fleet.paths import project_root
from drape_fleet.ssh import ssh_config

SUITE = "tests/host"
FLEET_ENV = "DRAPE_VERIFY_FLEET_FILE"


def ssh_config_text(target: FleetTarget, hosts: Sequence[Host], control_dir: Path) -> str:
    """An ssh_config naming each host as the fleet does (``Host ax1``), for testinfra's ssh:// backend (system
    ssh, so the post-quantum-only key exchange of a hardened host works), from the one SSH target type.
    testinfra opens many short sessions per host: one shared connection each (in ``control_dir``) makes
    them cheap."""
    multiplexing = [("ControlMaster", "auto"), ("ControlPersist", "60s"), ("ControlPath", f"{control_dir}/%C")]
    return ssh_config([target.ssh_target(host) for host in hosts], multiplexing)


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
        config.write_text(ssh_config_text(target, hosts, Path(tmp)))
        argv = pytest_argv(hosts, config, workers=min(len(hosts), 3), extra=extra)
        env = {FLEET_ENV: str(target.env.fleet_file)}
        process = subprocess.run(argv, cwd=project_root(), env={**os.environ, **env}, text=True,
                                 capture_output=not stream, check=False)
        output = "" if stream else (process.stdout or "") + (process.stderr or "")
        return VerifyResult(process.returncode == 0, process.returncode, output)
