"""Bring the lab up, report on it, take it down. Everything it makes is labelled ``drape.lab``."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

import docker
import tomli_w
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from drape_fleet import shell
from drape_fleet.config import FleetConfig, load_fleet
from drape_fleet.config.loader import validate_fleet
from drape_fleet.lab.engine import Log, engine_answers, engine_client, ensure_engine, require_root
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.images import ensure_host_image
from drape_fleet.lab.settings import LABEL, LabSettings
from drape_fleet.lab.spec import HOST_LABEL, SPEC_LABEL, host_container_spec, network_spec, volume_specs
from drape_fleet.ssh import SshTarget, ssh_run

BOOT_TIMEOUT_S = 90.0


# ---------------------------------------------------------------------------------------------------
# The fleet the lab stands for (pure)
# ---------------------------------------------------------------------------------------------------

LAB_PROVISIONING: dict[str, Any] = {
    # What a stand-in host cannot do that a server does (see drape_fleet.config.provisioning):
    # a lab host shares this machine's kernel, has no md driver, disks or LVM, cannot raise open files above
    # 20000, cannot run nested containers under userns-remap, and cannot reach Docker's apt repository.
    "base": {"owns_kernel": False},
    "docker": {"source": "distro", "nofile_soft": 16384, "nofile_hard": 20000, "userns_remap": False},
    "storage": {"expect_raid": False, "manage_volumes": False, "disk_monitoring": False},
    "cache": {"max_size_gib": 20},
}


def lab_fleet_data(settings: LabSettings) -> dict[str, Any]:
    """The lab's fleet file, as data: the same shape ops write for production."""
    return {
        "environment": {"name": "lab", "deploy_user": "deploy"},
        "network": {
            "admin_allowlist": [f"{settings.public_gateway}/32"],
            "backend_addresses": [f"{settings.private_gateway}/32"],
        },
        "provisioning": {**LAB_PROVISIONING, "firewall": {"private_network": [str(settings.private_subnet)]}},
        "hosts": [
            {
                "name": settings.host_name(i),
                "public_address": str(settings.public_address(i)),
                "private_address": str(settings.private_address(i)),
                "roles": ["preview", "canary"] if i == 1 else ["preview"],
                "capacity": {"cpus": settings.host_cpus, "memory_gib": settings.host_memory_gib,
                             "disk_gib": settings.host_disk_gib},
            }
            for i in range(1, settings.hosts + 1)
        ],
        "runtime": lab_runtime_data(),
    }


LAB_PREVIEW_MIB = 256
"""Lab previews are small so a 4 GiB stand-in host holds 16 of them: capacity and queueing are exercised."""


def lab_runtime_data() -> dict[str, Any]:
    """The runtime section of the lab fleet: small previews, lab-built template images, short timeouts."""
    frameworks: dict[str, Any] = {
        "tiny": {"image": "drape-lab/preview-tiny:1", "port": 3000, "ready_timeout_s": 60},
    }
    # A Next.js compile is killed by the OOM killer at 256 MiB (seen); Vite servers fit in 512 MiB.
    for name, memory_mib in (("nextjs", 1024), ("react", 512), ("vue", 512)):
        frameworks[name] = {"image": f"drape-lab/preview-{name}:1", "port": 3000, "ready_timeout_s": 600,
                            "resources": {"cpus": 1, "memory_mib": memory_mib, "pids_limit": 1024, "disk_gib": 2,
                                          "tmp_mib": 64}}
    return {
        "preview": {"cpus": 0.5, "memory_mib": LAB_PREVIEW_MIB, "pids_limit": 512, "disk_gib": 2, "tmp_mib": 64},
        "max_preview": {"cpus": 2, "memory_mib": 2048, "pids_limit": 2048, "disk_gib": 10, "tmp_mib": 256},
        "cpu_overcommit": 5,
        "frameworks": frameworks,
        "request_timeout_s": 8,
        "snapshot_timeout_s": 3,
        "queue_timeout_s": 120,
        "claim_timeout_s": 60,
    }


def lab_fleet(settings: LabSettings) -> FleetConfig:
    return validate_fleet(lab_fleet_data(settings), source="(lab)")


def ssh_target(settings: LabSettings, address: str, user: str = "deploy") -> SshTarget:
    return SshTarget(hostname=address, user=user, key=settings.ssh_key.resolve(),
                     known_hosts=settings.known_hosts.resolve())


# ---------------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------------

def up(settings: LabSettings, log: Log) -> FleetConfig:
    """Bring the lab to ``settings``: idempotent, and completes a half-made lab."""
    require_root("lab.up")
    client = ensure_engine(log)
    existing = _lab_containers(client, settings)
    extra = sorted(set(existing) - set(settings.host_names))
    if extra:
        raise LabError(f"the lab already runs {len(existing)} hosts ({', '.join(sorted(existing))}); "
                       f"asked for {settings.hosts}. To shrink it, run `invoke lab.down` first.")
    _check_networks(client, settings)
    image = ensure_host_image(client, log)
    for which in ("public", "private"):
        _ensure_network(client, settings, which, log)
    _ensure_ssh_key(settings, log)

    containers = [_ensure_host(client, settings, i, image, log) for i in range(1, settings.hosts + 1)]
    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        list(pool.map(lambda c: _prepare_host(c, settings), containers))
    _write_known_hosts(settings, containers)
    fleet = lab_fleet(settings)
    _write_state(settings, fleet)
    problems = [p for p in _ssh_problems(settings, fleet) if p]
    if problems:
        raise LabError("lab hosts are up but SSH does not answer:\n  " + "\n  ".join(problems))
    log(f"lab is up: {', '.join(fleet.host_names)} (fleet file {settings.fleet_file})")
    return fleet


def _lab_containers(client: docker.DockerClient, settings: LabSettings) -> dict[str, Container]:
    found = client.containers.list(all=True, filters={"label": settings.label_filter})
    return {c.labels[HOST_LABEL]: c for c in found}


def _our_network(client: docker.DockerClient, settings: LabSettings, name: str) -> Any | None:
    try:
        network = client.networks.get(name)
    except NotFound:
        return None
    if (network.attrs.get("Labels") or {}).get(LABEL) != settings.prefix:
        raise LabError(f"a Docker network named {name!r} exists but the lab did not make it; "
                       f"remove it or choose another lab prefix")
    return network


def network_subnet(network: Any) -> IPv4Network | None:
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    return IPv4Network(configs[0]["Subnet"]) if configs else None


def current_subnets(client: docker.DockerClient, settings: LabSettings) -> dict[str, IPv4Network]:
    """The subnets of the lab networks that exist now: the running lab's own record of its ranges."""
    found: dict[str, IPv4Network] = {}
    for which, name in (("public", settings.public_network), ("private", settings.private_network)):
        network = _our_network(client, settings, name)
        subnet = network_subnet(network) if network is not None else None
        if subnet is not None:
            found[which] = subnet
    return found


def _check_networks(client: docker.DockerClient, settings: LabSettings) -> None:
    """Refuse ranges that differ from the running lab's, or that something else on this machine uses."""
    current = current_subnets(client, settings)
    for which, wanted in (("public", settings.public_subnet), ("private", settings.private_subnet)):
        if which in current and current[which] != wanted:
            raise LabError(f"the lab's {which} network is {current[which]}, not {wanted}: run "
                           f"`invoke lab.down` first to change it, or leave --{which}-subnet out")
    ours = {str(s) for s in current.values()}
    for which, wanted in (("public", settings.public_subnet), ("private", settings.private_subnet)):
        if str(wanted) in ours:
            continue
        for used, owner in used_ranges(client, settings):
            if wanted.overlaps(used):
                example = {"public": "10.213.10.0/24", "private": "10.213.20.0/24"}[which]
                raise LabError(f"the address range {wanted} (--{which}-subnet) is already taken: {used} is used "
                               f"by {owner}. Pick a free private range, e.g. --{which}-subnet {example}")


def used_ranges(client: docker.DockerClient, settings: LabSettings) -> list[tuple[IPv4Network, str]]:
    """Address ranges in use on this machine (Docker networks, interface addresses, routes), this lab's
    own networks and their bridges excepted."""
    found: list[tuple[IPv4Network, str]] = []
    own_bridges: set[str] = set()
    for network in client.networks.list():
        if (network.attrs.get("Labels") or {}).get(LABEL) == settings.prefix:
            own_bridges.add(f"br-{(network.id or '')[:12]}")
            continue
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = config.get("Subnet", "")
            if subnet and ":" not in subnet:
                found.append((IPv4Network(subnet, strict=False), f"Docker network {network.name!r}"))
    addrs = shell.run(["ip", "-j", "-4", "addr"], check=False)
    if addrs.ok:
        for link in json.loads(addrs.stdout or "[]"):
            for info in link.get("addr_info", []):
                net = ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                if isinstance(net, IPv4Network) and not net.is_loopback and link.get("ifname") not in own_bridges:
                    found.append((net, f"interface {link.get('ifname')}"))
    routes = shell.run(["ip", "-j", "-4", "route"], check=False)
    if routes.ok:
        for route in json.loads(routes.stdout or "[]"):
            dst = route.get("dst", "default")
            if dst != "default":
                net = ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
                if isinstance(net, IPv4Network) and route.get("dev") not in own_bridges:
                    found.append((net, f"a route via {route.get('dev', '?')}"))
    return found


def _ensure_network(client: docker.DockerClient, settings: LabSettings, which: str, log: Log) -> None:
    spec = network_spec(settings, which)
    if _our_network(client, settings, spec["name"]) is not None:
        return
    log(f"creating network {spec['name']} ({settings.public_subnet if which == 'public' else settings.private_subnet})")
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet=spec["ipam"]["Config"][0]["Subnet"], gateway=spec["ipam"]["Config"][0]["Gateway"])])
    client.networks.create(spec["name"], driver=spec["driver"], ipam=ipam, labels=spec["labels"])


def _ensure_ssh_key(settings: LabSettings, log: Log) -> None:
    settings.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.state_dir.chmod(0o700)
    if not settings.ssh_key.exists():
        log(f"generating the lab's SSH key ({settings.ssh_key})")
        shell.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drape-lab", "-f", str(settings.ssh_key)])
    settings.ssh_key.chmod(0o600)


def _ensure_host(client: docker.DockerClient, settings: LabSettings, index: int, image: str,
                 log: Log) -> Container:
    host = settings.host_name(index)
    spec = host_container_spec(settings, index, image)
    for volume in volume_specs(settings, host):
        try:
            client.volumes.get(volume)
        except NotFound:
            client.volumes.create(volume, labels={LABEL: settings.prefix, HOST_LABEL: host})
    name = settings.container_name(host)
    try:
        container = client.containers.get(name)
    except NotFound:
        container = None
    if container is not None and container.labels.get(SPEC_LABEL) != spec["Labels"][SPEC_LABEL]:
        log(f"{host}: made from an older recipe; it keeps running as it is "
            "(run `invoke lab.down` then `invoke lab.up` to remake it)")
    if container is None:
        log(f"{host}: creating ({settings.public_address(index)}, {settings.private_address(index)})")
        created = client.api.create_container_from_config(spec, name)  # type: ignore[no-untyped-call]
        container = client.containers.get(created["Id"])
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    if settings.private_network not in networks:
        client.networks.get(settings.private_network).connect(
            container, ipv4_address=str(settings.private_address(index)))
    if container.status != "running":
        log(f"{host}: starting")
        container.start()
    return container


def _exec(container: Container, script: str) -> str:
    code, output = container.exec_run(["sh", "-c", script], demux=False)
    text = output.decode(errors="replace") if isinstance(output, bytes) else ""
    if code != 0:
        raise LabError(f"{container.name}: `{script[:80]}` failed (exit {code}): {text.strip()[-500:]}")
    return text


def _prepare_host(container: Container, settings: LabSettings) -> None:
    """Wait for systemd, then give root and the deploy user the lab key, as a fresh install has."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        _, output = container.exec_run(["systemctl", "is-system-running"])
        state = output.decode().strip() if isinstance(output, bytes) else ""
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    else:
        raise LabError(f"{container.name}: systemd did not finish booting within {BOOT_TIMEOUT_S:.0f} s "
                       f"(state {state!r}); see `docker logs {container.name}`")
    key = settings.ssh_key.with_suffix(".pub").read_text().strip()
    quoted = shlex.quote(key)
    _exec(container, f"""
set -e
install -d -m 700 /root/.ssh
echo {quoted} > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
id deploy >/dev/null 2>&1 || useradd --create-home --shell /bin/bash deploy
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
echo {quoted} > /home/deploy/.ssh/authorized_keys
chown deploy:deploy /home/deploy/.ssh/authorized_keys && chmod 600 /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-deploy && chmod 440 /etc/sudoers.d/90-deploy
systemctl is-active --quiet ssh || systemctl start ssh
test -s /etc/ssh/ssh_host_ed25519_key.pub
""")


def _write_known_hosts(settings: LabSettings, containers: list[Container]) -> None:
    """Pin each host's key, read over the engine (a trusted path), for both of its addresses."""
    lines = []
    for index, container in enumerate(containers, start=1):
        key = " ".join(_exec(container, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
        names = f"{settings.public_address(index)},{settings.private_address(index)},{settings.host_name(index)}"
        lines.append(f"{names} {key}")
    settings.known_hosts.write_text("\n".join(lines) + "\n")


def _write_state(settings: LabSettings, fleet: FleetConfig) -> None:
    header = "# Written by `invoke lab.up`: the lab fleet. Do not edit; `invoke lab.down` removes it.\n"
    settings.fleet_file.write_text(header + tomli_w.dumps(lab_fleet_data(settings)))
    key = settings.ssh_key.resolve()
    blocks = []
    for host in fleet.hosts:
        blocks.append(
            f"Host {host.name} {host.public_address}\n"
            f"  HostName {host.public_address}\n"
            f"  User deploy\n"
            f"  IdentityFile {key}\n"
            f"  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {settings.known_hosts.resolve()}\n"
            f"  StrictHostKeyChecking yes\n"
            f"  BatchMode yes\n"
        )
    settings.ssh_config.write_text("\n".join(blocks))
    (settings.state_dir / "lab.json").write_text(settings.model_dump_json(indent=2) + "\n")


def _ssh_problems(settings: LabSettings, fleet: FleetConfig) -> list[str]:
    def probe(address: str) -> str:
        result = ssh_run(ssh_target(settings, address), "true", timeout=15, check=False)
        return "" if result.ok else f"{address}: {result.stderr.strip() or result.returncode}"

    with ThreadPoolExecutor(max_workers=len(fleet.hosts)) as pool:
        return list(pool.map(probe, [str(h.public_address) for h in fleet.hosts]))


# ---------------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------------

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


def saved_settings(state_dir: Path) -> LabSettings | None:
    path = state_dir / "lab.json"
    if not path.exists():
        return None
    return LabSettings.model_validate_json(path.read_text())


def status(settings: LabSettings) -> list[HostStatus]:
    """Each lab host: container state, whether SSH answers, whether its inner Docker engine answers."""
    if not engine_answers():
        raise LabError("no Docker engine answers on this machine: the lab is down (run `invoke lab.up`)")
    client = engine_client()
    containers = _lab_containers(client, settings)
    fleet = load_fleet(settings.fleet_file) if settings.fleet_file.exists() else None
    names = sorted(set(containers) | set(fleet.host_names if fleet else ()), key=lambda n: (len(n), n))

    def one(name: str) -> HostStatus:
        container = containers.get(name)
        host = fleet.host(name) if fleet and name in fleet.host_names else None
        public = str(host.public_address) if host else "?"
        private = str(host.private_address) if host else "?"
        state = container.status if container else "missing"
        if container is None or state != "running" or host is None:
            return HostStatus(name, public, private, state, "-", "-")
        started = time.monotonic()
        target = ssh_target(settings, public)
        ssh = ssh_run(target, "true", timeout=10, check=False)
        if not ssh.ok:
            return HostStatus(name, public, private, state, f"no: {ssh.stderr.strip()[:60]}", "-")
        ssh_text = f"ok ({(time.monotonic() - started) * 1000:.0f} ms)"
        engine = ssh_run(target, "sudo -n docker version --format '{{.Server.Version}}' 2>&1 || "
                                 "{ command -v docker >/dev/null || echo 'not installed'; }",
                         timeout=15, check=False)
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


# ---------------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DownReport:
    containers: list[str]
    volumes: list[str]
    networks: list[str]
    files: list[str]

    @property
    def nothing(self) -> bool:
        return not (self.containers or self.volumes or self.networks or self.files)


def planned_removal(settings: LabSettings) -> DownReport:
    """What ``down`` would remove (for the confirmation), found by label."""
    containers: list[str] = []
    volumes: list[str] = []
    networks: list[str] = []
    if engine_answers():
        client = engine_client()
        owned: dict[str, Any] = {"label": settings.label_filter}
        containers = sorted(c.name or "" for c in client.containers.list(all=True, filters=owned))
        volumes = sorted(v.name for v in client.volumes.list(filters=owned))
        networks = sorted(n.name or "" for n in client.networks.list(filters=owned))
    files = [str(settings.state_dir)] if settings.state_dir.exists() else []
    return DownReport(containers, volumes, networks, files)


def down(settings: LabSettings, log: Log) -> DownReport:
    """Remove every container, volume and network labelled as the lab's, and the lab's files."""
    require_root("lab.down")
    plan = planned_removal(settings)
    if engine_answers():
        client = engine_client()
        for container in client.containers.list(all=True, filters={"label": settings.label_filter}):
            log(f"removing container {container.name}")
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": settings.label_filter}):
            log(f"removing volume {volume.name}")
            try:
                volume.remove(force=True)
            except (NotFound, APIError) as exc:
                raise LabError(f"could not remove volume {volume.name}: {exc}") from exc
        for network in client.networks.list(filters={"label": settings.label_filter}):
            log(f"removing network {network.name}")
            with contextlib.suppress(NotFound):
                network.remove()
    if settings.state_dir.exists():
        log(f"removing {settings.state_dir} (lab keys, fleet file)")
        _remove_tree(settings.state_dir)
    return plan


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path)
