"""Lab fixtures for the runtime: the lab hosts' engines reached over mutual TLS, the tiny preview image on every
host, and a clean slate before each test. Like every lab fixture they FAIL (never skip) when the lab cannot start.

Checks of outcomes go through the outer engine (``docker exec <lab host> docker ...``): an observer that does
not share code with the runtime under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
        flag = "-a" if all_states else ""
        out = self.on_host(host, f"docker ps {flag} --filter label=drape.owner --format '{{{{json .}}}}'")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

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


@pytest.fixture(scope="session")
def runtime_lab(lab_fleet: FleetConfig, provisioned_lab: object) -> RuntimeLab:
    """The lab as provisioned by the real deploys (TLS engines, firewall, pnpm store), plus the tiny preview
    image on every host."""
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.runtime.engines import Fleet, TlsFiles, tls_endpoints
    from drape_fleet.tasks import runtime_lab as rl

    settings = rl.lab_settings()
    try:
        pki = pki_dir("lab")
        rl.ensure_tiny_image(lambda m: print(f"[runtime-lab] {m}"))
        engines = Fleet.from_endpoints(tls_endpoints(lab_fleet, TlsFiles.from_pki_dir(pki)), lab_fleet.runtime)
        try:
            rl.ship_image(engines.engines(), rl.TINY_IMAGE, lambda m: print(f"[runtime-lab] {m}"))
        finally:
            engines.close()
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the runtime lab could not be prepared: {exc}", pytrace=False)
    return RuntimeLab(fleet=lab_fleet, settings=settings, pki=pki)


@pytest.fixture
def lab(runtime_lab: RuntimeLab) -> Iterator[RuntimeLab]:
    """The runtime lab with no preview, network or cordon of ours on any host, before and after the test."""
    runtime_lab.clean()
    yield runtime_lab
    runtime_lab.clean()


@pytest.fixture
def runtimes(lab: RuntimeLab) -> Iterator[Callable[..., PreviewRuntime]]:
    """Make runtimes for a test; every one is closed afterwards."""
    made: list[PreviewRuntime] = []

    def make(**kwargs: Any) -> PreviewRuntime:
        runtime = lab.runtime(**kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
