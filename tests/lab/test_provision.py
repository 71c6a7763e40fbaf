"""Provisioning on real lab hosts: every host provisioned once (session fixture), then checked from outside.

The order of the tests in this module matters only where said; each restores what it changes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import DockerException
from docker.tls import TLSConfig

from drape_fleet.config import FleetConfig
from drape_fleet.environments import FleetTarget
from drape_fleet.paths import project_root
from drape_fleet.pki.paths import client_tls_files, pki_dir
from drape_fleet.provision.service import provision
from drape_fleet.provision.verify import run_verify
from drape_fleet.ssh import ssh_run

pytestmark = pytest.mark.lab

# The ruleset without its counters and the per-preview rate sets (their members come and go with traffic).
RULESET_DIGEST = (r"sudo nft --stateless list table inet drape_filter"
                  r" | sed '/set preview_rate_v[46] {/,/^\t}$/d' | sha256sum")


def _ssh(name: str, command: str, *, user: str = "deploy", check: bool = True, timeout: float = 60) -> str:
    target = _target()
    result = ssh_run(target.ssh_target(target.fleet.host(name), user=user), command,
                     timeout=timeout, check=check)
    return result.stdout.strip() if result.ok else f"__failed__ {result.returncode} {result.stderr.strip()}"


def _target() -> FleetTarget:
    return _lab()


def _lab() -> FleetTarget:
    from drape_fleet.environments import LAB, load

    return load(LAB)


def _lab_pinned_key(name: str = "ax1") -> str:
    """The key lab.up pinned for lab host ``name`` (read from the host over the engine)."""
    from drape_fleet import hostkeys

    [key] = hostkeys.pinned(hostkeys.read(_lab().env.known_hosts), name)
    return key.key


def _reach_from(name: str, address: str, port: int) -> bool:
    """Whether lab host ``name`` opens a TCP connection to address:port (and reads a byte)."""
    out = _ssh(name, f"timeout 2 bash -c 'exec 3<>/dev/tcp/{address}/{port} && head -c 5 <&3' 2>&1 || echo __no__",
               check=False)
    return "__no__" not in out and "__failed__" not in out


def _reach_from_stranger(address: str, port: int) -> bool:
    """Whether a machine on the private network that is no backend (every lab host runs the runtime service, so
    each is one) opens a TCP connection to address:port: a container of the lab host image on that network."""
    from drape_fleet.lab.state import lab_state_settings

    settings = lab_state_settings()
    client = docker.from_env()
    image = client.containers.get(settings.container_name(settings.host_name(1))).attrs["Config"]["Image"]
    probe = f"timeout 2 bash -c 'exec 3<>/dev/tcp/{address}/{port} && head -c 5 <&3' 2>&1 || echo __no__"
    out = client.containers.run(image, ["bash", "-c", probe], network=settings.private_network, remove=True)
    return "__no__" not in out.decode()


def _reach_from_here(address: str, port: int, source: str | None = None) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3,
                                      source_address=(source, 0) if source else None) as conn:
            conn.settimeout(4)
            return bool(conn.recv(5))
    except OSError:
        return False


@contextmanager
def _published(name: str, spec: str) -> Iterator[str]:
    """A probe container on ``name`` answering "hello" on 8080, published as ``spec`` (docker run -p)."""
    image = "drape-verify/probe:busybox"
    _ssh(name, f"sudo docker image inspect {image} >/dev/null 2>&1 || {{ d=$(mktemp -d); mkdir $d/bin; "
               f"cp /bin/busybox $d/bin/; for a in sh nc echo; do ln -s busybox $d/bin/$a; done; "
               f"tar -C $d -c . | sudo docker import - {image}; }}")
    cid = _ssh(name, f"sudo docker run -d -p {spec} {image} nc -ll -p 8080 -e echo hello")
    try:
        yield cid
    finally:
        _ssh(name, f"sudo docker rm -f {cid}", check=False)


def test_every_host_is_provisioned(provisioned_lab: FleetTarget) -> None:
    hosts = {h.name for h in provisioned_lab.fleet.hosts}
    states = {name: _ssh(name, "systemctl is-active docker drape-firewall ssh | sort -u") for name in hosts}
    assert states == dict.fromkeys(hosts, "active")


def test_verify_suite_passes_on_every_host(provisioned_lab: FleetTarget) -> None:
    result = run_verify(provisioned_lab, list(provisioned_lab.fleet.hosts), stream=False)
    assert result.ok, result.output[-4000:]
    assert " failed" not in result.output


@contextmanager
def _stopped(name: str, unit: str) -> Iterator[None]:
    _ssh(name, f"sudo systemctl stop {unit}")
    try:
        yield
    finally:
        _ssh(name, f"sudo systemctl start {unit}", check=False)


def test_published_port_unreachable_from_another_host_unless_allowed(provisioned_lab: FleetTarget) -> None:
    ax1 = provisioned_lab.fleet.host("ax1")
    private, public = str(ax1.private_address), str(ax1.public_address)
    # Port 80 is the ingress' (Caddy) on a provisioned host: it steps aside while a probe takes the open port.
    with _stopped("ax1", "caddy"), _published("ax1", "18080:8080"), _published("ax1", "0.0.0.0:18081:8080"), \
            _published("ax1", "0.0.0.0:80:8080"):
        # Not allowed: a stranger on the private network (the hosts are backends: they run the service), and
        # another host on the public one.
        assert not _reach_from_stranger(private, 18080)
        assert not _reach_from("ax2", public, 18081)
        # Allowed: the backend (this machine's private address), and the preview port open to everyone.
        assert _reach_from_here(private, 18080)
        assert _reach_from("ax2", public, 80)
        # Control: without our forward chain, Docker's DNAT would let ax2 in (the bypass is real here).
        _ssh("ax1", "sudo nft flush chain inet drape_filter published")
        try:
            assert _reach_from("ax2", public, 18081)
        finally:
            _ssh("ax1", "sudo systemctl reload drape-firewall")
        assert not _reach_from("ax2", public, 18081)


def test_previews_reach_neither_the_host_nor_the_private_network(provisioned_lab: FleetTarget) -> None:
    """A container on a preview bridge (drp*, as the runtime names them) against one on an ordinary network."""
    import threading

    ax1 = provisioned_lab.fleet.host("ax1")
    backend = str(provisioned_lab.fleet.network.backend_addresses[0].network_address)
    server = socket.create_server((backend, 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [server.accept()[0].close() for _ in range(4)], daemon=True).start()
    image = "drape-verify/probe:busybox"
    with _published("ax1", "127.0.0.1:18099:8080"):  # makes sure the probe image is there
        pass
    _ssh("ax1", "sudo docker network create -o com.docker.network.bridge.name=drptest0 drape-test-preview "
                ">/dev/null; sudo docker network create drape-test-plain >/dev/null; "
                "(sudo busybox nc -ll -p 80 -e echo hi >/dev/null 2>&1 &)")
    try:
        def connects(network: str, address: str, target_port: int) -> bool:
            out = _ssh("ax1", f"sudo docker run --rm --network {network} {image} sh -c "
                              f"'echo | nc -w 2 {address} {target_port} >/dev/null && echo yes || echo no'")
            return out == "yes"

        assert connects("drape-test-plain", backend, port)
        assert connects("drape-test-plain", str(ax1.private_address), 80)
        assert not connects("drape-test-preview", backend, port)
        assert not connects("drape-test-preview", str(ax1.private_address), 80)
    finally:
        server.close()
        _ssh("ax1", "sudo pkill -f 'busybox nc -ll -p 80'; sudo docker network rm drape-test-preview "
                    "drape-test-plain", check=False)


def test_docker_api_answers_the_backend_with_mutual_tls_only(provisioned_lab: FleetTarget) -> None:
    ax1 = provisioned_lab.fleet.host("ax1")
    url = f"https://{ax1.private_address}:{provisioned_lab.fleet.network.docker_api_port}"
    ca, cert, key = client_tls_files(pki_dir("lab"))
    client = docker.DockerClient(base_url=url, version="1.41", timeout=10,
                                 tls=TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca), verify=True))
    # requests prefers $REQUESTS_CA_BUNDLE (set on this machine) over the CA docker-py passes: without
    # trust_env off, our CA is ignored and verification fails.
    client.api.trust_env = False
    assert client.ping()
    assert client.version()["Version"]
    without_cert = docker.DockerClient(base_url=url, version="1.41", timeout=10,
                                       tls=TLSConfig(ca_cert=str(ca), verify=True))
    without_cert.api.trust_env = False
    with pytest.raises((DockerException, requests.exceptions.SSLError)):
        without_cert.ping()
    # An address outside network.backend_addresses (this machine's public lab address: an admin, not the backend;
    # the hosts are backends, they run the runtime service) is dropped by the firewall before TLS.
    outsider = str(provisioned_lab.fleet.network.admin_allowlist[0].network_address)
    assert not _reach_from_here(str(ax1.private_address), provisioned_lab.fleet.network.docker_api_port, outsider)


def test_root_can_no_longer_log_in(provisioned_lab: FleetTarget) -> None:
    out = _ssh("ax3", "true", user="root", check=False)
    assert out.startswith("__failed__") and "Permission denied" in out


def test_dry_run_shows_the_change_and_makes_none(provisioned_lab: FleetTarget) -> None:
    _ssh("ax3", "sudo rm /etc/drape/pnpm-store.conf")
    try:
        result = provision(provisioned_lab, ["ax3"], only="cache", dry=True)
        cache = result.runs[0].deploys["cache"]
        assert "Store location and limit" in cache.changed
        assert _ssh("ax3", "test -e /etc/drape/pnpm-store.conf && echo there || echo absent") == "absent"
    finally:
        result = provision(provisioned_lab, ["ax3"], only="cache")
    assert result.ok and "Store location and limit" in result.runs[0].deploys["cache"].changed
    assert set(result.runs[0].deploys) == {"cache"}


def test_only_runs_the_named_deploys(provisioned_lab: FleetTarget) -> None:
    result = provision(provisioned_lab, ["ax2"], only="firewall,ssh")
    assert result.ok
    assert list(result.runs[0].deploys) == ["ssh", "firewall"]


def test_site_twice_second_run_changes_nothing(provisioned_lab: FleetTarget) -> None:
    """Idempotence, from pyinfra's own JSON totals: run site.py twice on ax1; the second run changes nothing."""
    argv = [sys.executable, "-m", "pyinfra", "-y", "--json", "--limit", "ax1", "inventories/lab.py", "deploys/site.py"]
    totals = []
    for _ in range(2):
        run = subprocess.run(argv, cwd=project_root(), capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        totals.append(json.loads(run.stdout)["results"]["totals"])
    assert totals[1]["success"] == 0, totals
    assert totals[1]["error"] == 0
    assert totals[1]["no_change"] > 40


def test_unknown_host_is_refused_listing_the_known_ones(lab_fleet: object) -> None:
    run = _invoke("provision", "--host", "ax9", "--env", "lab")
    assert run.returncode != 0
    assert "unknown host 'ax9'" in run.stderr and "ax1, ax2, ax3" in run.stderr


def test_unreachable_host_fails_clearly(tmp_path: Path, lab_fleet: FleetConfig) -> None:
    """A production-shaped fleet whose host is an unused lab address: clear error, non-zero, no success."""
    admin = lab_fleet.network.admin_allowlist[0]
    backend = lab_fleet.network.backend_addresses[0]
    unused_public = lab_fleet.hosts[0].public_address + 88
    unused_private = lab_fleet.hosts[0].private_address + 88
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'[environment]\nname = "production"\n[network]\nadmin_allowlist = ["{admin}"]\n'
        f'backend_addresses = ["{backend}"]\n'
        f'[provisioning.firewall]\nprivate_network = ["{lab_fleet.provisioning.firewall.private_network[0]}"]\n'
        f'[[hosts]]\nname = "ax9"\npublic_address = "{unused_public}"\nprivate_address = "{unused_private}"\n'
        'robot_server_number = 1\ncapacity = { cpus = 1, memory_gib = 1, disk_gib = 1 }\n')
    pki = tmp_path / "pki"
    # Its key pinned (any key: the host never answers) and the lab's key offered, so preflight gets to try.
    (tmp_path / "fleet.known_hosts").write_text(f"{unused_public} ssh-ed25519 {_lab_pinned_key()}\n")
    env = {"DRAPE_FLEET_FILE": str(fleet), "DRAPE_PKI_DIR": str(pki), "DRAPE_SSH_KEY": str(_lab().env.ssh_key)}
    assert _invoke("pki.init", "--env", "production", env=env).returncode == 0
    run = _invoke("provision", "--host", "ax9", "--env", "production", env=env)
    assert run.returncode != 0
    assert "ax9 is unreachable" in run.stderr and "Nothing was changed" in run.stderr
    assert "provisioned" not in run.stdout


def test_allowlist_without_the_ops_address_is_refused_before_touching_the_host(provisioned_lab: FleetTarget) -> None:
    from drape_fleet.provision.preflight import ProvisionRefused

    before = _ssh("ax1", RULESET_DIGEST)
    fleet = provisioned_lab.fleet
    ops_address = fleet.network.admin_allowlist[0].network_address
    elsewhere = ip_network(f"{ops_address + 199}/32")
    locked = fleet.model_copy(update={"network": fleet.network.model_copy(
        update={"admin_allowlist": (elsewhere,)})})
    target = dataclasses.replace(provisioned_lab, fleet=locked)
    with pytest.raises(ProvisionRefused, match=rf"you connect from {re.escape(str(ops_address))}.*lock you out"):
        provision(target, ["ax1"])
    assert _ssh("ax1", RULESET_DIGEST) == before


def test_missing_tls_ca_is_refused(tmp_path: Path) -> None:
    """Production fleet, empty PKI directory: refused before any host is contacted."""
    run = _invoke("provision", "--host", "ax1", "--env", "production", env={"DRAPE_PKI_DIR": str(tmp_path)})
    assert run.returncode != 0
    assert "missing TLS CA" in run.stderr and "invoke pki.init" in run.stderr


def _invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([str(Path(sys.executable).with_name("invoke")), *args], cwd=project_root(),
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_runtime_upgrade_reads_what_apt_would_do(provisioned_lab: FleetTarget) -> None:
    """`invoke hosts.upgrade-runtime --dry` on real Debian hosts: dpkg and apt's simulation answer, and nothing
    changes (the lab's docker.io is current; the drain/upgrade order is tested in tests/unit)."""
    run = _invoke("hosts.upgrade-runtime", "--host", "ax2", "--dry", "--env", "lab")
    assert run.returncode == 0, run.stderr
    assert re.search(r"ax2: (the container runtime is up to date \(.*docker\.io.*\)|pending: )", run.stdout), run.stdout
