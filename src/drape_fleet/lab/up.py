"""`invoke lab.up`: bring the lab to its settings, idempotently, completing a half-made lab: the hosts (each on its
XFS data disk), their networks and keys, and the lab's git server (``drape_fleet.lab.gitserver``)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import docker

from drape_fleet import shell
from drape_fleet.backup.lab_target import ensure_target
from drape_fleet.config import FleetConfig
from drape_fleet.console import Log
from drape_fleet.lab import gitserver
from drape_fleet.lab.engine import ensure_engine, require_root
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.fleet import lab_fleet
from drape_fleet.lab.hosts import ensure_host, host_key, lab_containers, prepare_host
from drape_fleet.lab.images import ensure_host_image
from drape_fleet.lab.ranges import check_ranges, own_network
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.spec import network_spec
from drape_fleet.lab.state import write_state
from drape_fleet.ssh import ssh_run


def up(settings: LabSettings, log: Log) -> FleetConfig:
    """Bring the lab to ``settings``: idempotent, and completes a half-made lab."""
    require_root("lab.up")
    client = ensure_engine(log)
    existing = lab_containers(client, settings)
    extra = sorted(set(existing) - set(settings.host_names))
    if extra:
        raise LabError(f"the lab already runs {len(existing)} hosts ({', '.join(sorted(existing))}); "
                       f"asked for {settings.hosts}. To shrink it, run `invoke lab.down` first.")
    check_ranges(client, settings)
    image = ensure_host_image(client, log)
    for which in ("public", "private"):
        _ensure_network(client, settings, which, log)
    _ensure_ssh_key(settings, log)

    containers = [ensure_host(client, settings, i, image, log) for i in range(1, settings.hosts + 1)]
    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        list(pool.map(lambda c: prepare_host(c, settings), containers))
    write_state(settings, [host_key(c, settings, i) for i, c in enumerate(containers, start=1)])
    ensure_target(client, settings, log)  # the lab's stand-in Storage Box (docs/backups.md)
    fleet = lab_fleet(settings)
    problems = [p for p in _ssh_problems(settings) if p]
    if problems:
        raise LabError("lab hosts are up but SSH does not answer:\n  " + "\n  ".join(problems))
    git = gitserver.ensure(settings, log)
    log(f"lab is up: {', '.join(fleet.host_names)} (fleet file {settings.fleet_file}), git server {git}")
    return fleet


def _ensure_network(client: docker.DockerClient, settings: LabSettings, which: str, log: Log) -> None:
    spec = network_spec(settings, which)
    if own_network(client, settings, spec["name"]) is not None:
        return
    config = spec["ipam"]["Config"][0]
    log(f"creating network {spec['name']} ({config['Subnet']})")
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=config["Subnet"],
                                                                       gateway=config["Gateway"])])
    client.networks.create(spec["name"], driver=spec["driver"], ipam=ipam, labels=spec["labels"])


def _ensure_ssh_key(settings: LabSettings, log: Log) -> None:
    settings.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.state_dir.chmod(0o700)
    if not settings.ssh_key.exists():
        log(f"generating the lab's SSH key ({settings.ssh_key})")
        shell.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drape-lab", "-f", str(settings.ssh_key)])
    settings.ssh_key.chmod(0o600)


SSH_BOOT_WAIT_S = 60.0  # a host that already existed (the machine restarted) boots its whole system first


def _ssh_problems(settings: LabSettings, wait_s: float = SSH_BOOT_WAIT_S) -> list[str]:
    def probe(index: int) -> str:
        target = settings.ssh_target(index)
        deadline = time.monotonic() + wait_s
        while True:
            result = ssh_run(target, "true", timeout=15, check=False)
            if result.ok:
                return ""
            # Only a refused or reset connection is a host still booting; a refused key or a changed host key
            # will not mend by waiting.
            booting = any(w in result.stderr for w in ("Connection refused", "Connection reset", "closed by remote"))
            if not booting or time.monotonic() > deadline:
                return f"{target.hostname}: {result.stderr.strip() or result.returncode}"
            time.sleep(1)

    with ThreadPoolExecutor(max_workers=settings.hosts) as pool:
        return list(pool.map(probe, range(1, settings.hosts + 1)))
