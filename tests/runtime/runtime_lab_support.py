"""Helpers the runtime's lab tests share (a module of its own: ``conftest`` names collide across test folders).

Checks of outcomes go through the outer engine (``docker exec <lab host> docker ...``): an observer that does
not share code with the runtime under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import project_root
from drape_fleet.runtime.service import PreviewRuntime

WORKER = Path(__file__).with_name("worker.py")


@dataclass
class RuntimeLab:
    fleet: FleetConfig
    settings: LabSettings
    pki: Path

    def container(self, host: str) -> str:
        return self.settings.container_name(host)

    def on_host(self, host: str, command: str, *, check: bool = True, timeout: float = 60) -> str:
        """Run a shell command inside a lab host (as root), through the outer engine."""
        result = subprocess.run(["docker", "exec", self.container(host), "sh", "-c", command],
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{host}: `{command}` failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result.stdout

    def memory_reserved(self, host: str) -> int:
        """Sum of the memory limits of every running container on ``host``, as its engine reports them."""
        out = self.on_host(host, "docker ps -q | xargs -r docker inspect -f '{{.HostConfig.Memory}}'")
        return sum(int(x) for x in out.split())

    def owned(self, host: str, *, all_states: bool = True) -> list[dict[str, str]]:
        """The previews (and their tombstones) on ``host``: our owner label, kind ``preview`` (not the network
        holders placement keeps ready)."""
        flag = "-a" if all_states else ""
        out = self.on_host(host, f"docker ps {flag} --filter label=drape.owner --filter label=drape.kind=preview "
                                 "--format '{{json .}}'")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def orphan_networks(self, host: str) -> list[str]:
        """Networks of ours that no container of ours (preview or network holder) is tied to by its claim."""
        claims = set(self.on_host(host, "docker ps -a --filter label=drape.owner "
                                        "--format '{{.Label \"drape.claim\"}}'").split())
        networks = self.on_host(host, "docker network ls --filter label=drape.owner --format '{{.Name}}'").split()
        return [n for n in networks if n.rsplit("-", 1)[-1] not in claims]

    def clean(self) -> None:
        for host in self.fleet.host_names:
            self.on_host(host, "docker ps -aq --filter label=drape.owner | xargs -r -P 8 -n 4 docker rm -f >/dev/null; "
                               "docker network ls -q --filter label=drape.owner | xargs -r -P 8 -n 4 docker network rm "
                               ">/dev/null; docker volume rm -f drape-cordon >/dev/null; true", timeout=120)

    def runtime(self, *, background: bool = False, reaper: bool = False, **overrides: Any) -> PreviewRuntime:
        config = with_runtime(self.fleet, **overrides)
        return PreviewRuntime.connect(config, pki_dir=self.pki, background=background, reaper=reaper)

    def worker(self, command: dict[str, Any], *, timeout: float = 180) -> subprocess.Popen[str]:
        """Another backend process (same code, its own memory): runs ``worker.py`` with a JSON command."""
        env = {**os.environ, "DRAPE_PKI_DIR": str(self.pki), "PYTHONPATH": str(project_root() / "src")}
        return subprocess.Popen([sys.executable, str(WORKER), json.dumps(command)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)


def with_runtime(fleet: FleetConfig, **overrides: Any) -> FleetConfig:
    runtime = RuntimeSettings.model_validate({**fleet.runtime.model_dump(), **overrides})
    return fleet.model_copy(update={"runtime": runtime})


def collect(process: subprocess.Popen[str], timeout: float = 240) -> Any:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"worker failed ({process.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])
