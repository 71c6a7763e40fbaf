"""Make sure a Docker engine answers on this machine, installing and starting one if needed.

This machine kind has no systemd and no running daemon: Debian's ``docker.io`` is installed when
``dockerd`` is missing and started in the background with its state under /var/lib/drape-lab.
Where systemd runs (a developer's Debian/Ubuntu box), ``systemctl start docker`` is used instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from drape_fleet import shell
from drape_fleet.console import Log
from drape_fleet.lab.errors import LabError

ENGINE_ROOT = Path("/var/lib/drape-lab")
SOCKET = "unix:///var/run/docker.sock"
START_TIMEOUT_S = 60.0


def engine_client(timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", SOCKET), timeout=timeout)


def engine_answers() -> bool:
    try:
        return bool(engine_client(timeout=5).ping())
    except DockerException:
        return False


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (it starts dockerd, runs debootstrap and manages bridges): "
                       "run it as root, e.g. `sudo -E .venv/bin/invoke lab.up`")


def ensure_engine(log: Log) -> docker.DockerClient:
    """Return a client for a Docker engine that answers, starting one if none does."""
    if engine_answers():
        return engine_client()
    require_root("starting a Docker engine")
    if shutil.which("dockerd") is None:
        log("no dockerd on this machine: installing Debian's docker.io")
        _apt_install("docker.io")
    if Path("/run/systemd/system").is_dir():
        log("starting the Docker engine (systemctl start docker)")
        shell.run(["systemctl", "start", "docker"], timeout=120)
    else:
        _start_background_dockerd(log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if engine_answers():
            log("Docker engine answers")
            return engine_client()
        time.sleep(0.5)
    raise LabError(f"the Docker engine did not answer within {START_TIMEOUT_S:.0f} s; "
                   f"see {ENGINE_ROOT / 'dockerd.log'}")


def _start_background_dockerd(log: Log) -> None:
    ENGINE_ROOT.mkdir(parents=True, exist_ok=True)
    log_path = ENGINE_ROOT / "dockerd.log"
    log(f"starting dockerd in the background (data in {ENGINE_ROOT / 'engine'}, log in {log_path})")
    with log_path.open("ab") as out:
        subprocess.Popen(
            ["dockerd", "--data-root", str(ENGINE_ROOT / "engine"), "--exec-root", "/run/drape-lab-engine",
             "-H", SOCKET, "--pidfile", "/run/drape-lab-dockerd.pid"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    shell.run(["apt-get", "update", "-q"], timeout=600, env=env)
    shell.run(["apt-get", "install", "-y", "-q", *packages], timeout=1200, env=env)


def ensure_tools(log: Log, tools: dict[str, str]) -> None:
    """Install the Debian packages that provide missing tools (``{"debootstrap": "debootstrap"}``)."""
    missing = sorted({package for tool, package in tools.items() if shutil.which(tool) is None})
    if missing:
        require_root(f"installing {', '.join(missing)}")
        log(f"installing {', '.join(missing)}")
        _apt_install(*missing)
