"""`invoke lab.status`: each lab host's container, SSH, inner Docker engine, and Docker API over mutual TLS."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from drape_fleet.config import FleetConfig, load_fleet
from drape_fleet.lab.engine import engine_answers, engine_client
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.hosts import lab_containers
from drape_fleet.lab.settings import LabSettings
from drape_fleet.ssh import ssh_run

DOCKER_VERSION = ("sudo -n docker version --format '{{.Server.Version}}' 2>&1 || "
                  "{ command -v docker >/dev/null || echo 'not installed'; }")


@dataclass(frozen=True)
class HostStatus:
    name: str
    public_address: str
    private_address: str
    container: str
    ssh: str
    docker: str
    docker_api: str = "-"

    @property
    def healthy(self) -> bool:
        return self.container == "running" and self.ssh.startswith("ok")


def status(settings: LabSettings) -> list[HostStatus]:
    """Each lab host: container state, whether SSH answers, whether its inner Docker engine answers."""
    if not engine_answers():
        raise LabError("no Docker engine answers on this machine: the lab is down (run `invoke lab.up`)")
    containers = lab_containers(engine_client(), settings)
    fleet = load_fleet(settings.fleet_file) if settings.fleet_file.exists() else None
    names = sorted(set(containers) | set(fleet.host_names if fleet else ()), key=lambda n: (len(n), n))

    def one(name: str) -> HostStatus:
        container = containers.get(name)
        host = fleet.host(name) if fleet and name in fleet.host_names else None
        public = str(host.public_address) if host else "?"
        private = str(host.private_address) if host else "?"
        state = container.status if container else "missing"
        if container is None or state != "running" or host is None or name not in settings.host_names:
            return HostStatus(name, public, private, state, "-", "-")
        started = time.monotonic()
        target = settings.ssh_target(settings.host_names.index(name) + 1)
        ssh = ssh_run(target, "true", timeout=10, check=False)
        if not ssh.ok:
            return HostStatus(name, public, private, state, f"no: {ssh.stderr.strip()[:60]}", "-")
        ssh_text = f"ok ({(time.monotonic() - started) * 1000:.0f} ms)"
        engine = ssh_run(target, DOCKER_VERSION, timeout=15, check=False)
        text = engine.stdout.strip().splitlines()[-1] if engine.stdout.strip() else "no answer"
        docker_text = f"ok ({text})" if engine.ok and text[:1].isdigit() else text[:60]
        return HostStatus(name, public, private, state, ssh_text, docker_text, _api_status(fleet, host.name))

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return list(pool.map(one, names))


def _api_status(fleet: FleetConfig | None, host: str) -> str:
    """Whether the host's Docker API answers the way the backend reaches it: mutual TLS on the private address."""
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.runtime.engines import Engine, TlsFiles, tls_endpoints

    if fleet is None:
        return "-"
    tls = TlsFiles.from_pki_dir(pki_dir("lab"))
    if tls.missing():
        return "no PKI yet (provision first)"
    endpoint = next(e for e in tls_endpoints(fleet, tls) if e.host == host)
    engine = Engine(endpoint, fleet.runtime)
    try:
        version = engine.api.version()["Version"]
    except Exception as exc:  # any failure is the answer: show it, shortened
        return f"no: {str(exc).splitlines()[0][:60]}"
    finally:
        engine.close()
    return f"ok ({version}, {endpoint.base_url.removeprefix('tcp://')})"
