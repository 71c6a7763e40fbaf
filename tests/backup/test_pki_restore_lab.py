"""The most precious item: the Docker API CA. The ops machine loses its PKI directory and a host is rebuilt
from nothing; the CA restored from the backup provisions the new host, and the backend, with the client
certificate it already had, still reaches every engine."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import docker
import pytest
from backup_lab import BackupLab
from docker.tls import TLSConfig

from drape_fleet.backup import service
from drape_fleet.lab.disks import disk, remove_disk
from drape_fleet.lab.hosts import lab_containers
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.lab.up import up
from drape_fleet.pki.paths import ca_files, client_tls_files
from drape_fleet.provision.service import provision

pytestmark = pytest.mark.lab
REBUILT = "ax3"


def _engine_answers(fleet_host: str, address: str, port: int, backend: Path) -> str:
    """The engine's version, reached as the backend does (mutual TLS with its own files)."""
    tls = TLSConfig(client_cert=(str(backend / "cert.pem"), str(backend / "key.pem")), ca_cert=str(backend / "ca.pem"),
                    verify=True)
    client = docker.DockerClient(base_url=f"tcp://{address}:{port}", tls=tls, version="1.41", timeout=15)
    client.api.trust_env = False  # $REQUESTS_CA_BUNDLE would replace our CA (deploys/README.md)
    try:
        return str(client.version()["Version"])
    finally:
        client.close()


def _rebuild_lab_host(name: str) -> None:
    """The host is gone with its disks (container and volumes), then comes back fresh as after installimage."""
    settings = lab_state_settings()
    client = docker.from_env()
    lab_containers(client, settings)[name].remove(force=True, v=True)
    remove_disk(disk(settings, name), lambda message: print(f"[lab] {message}"))  # its data disk: docker, srv
    up(settings, lambda message: print(f"[lab] {message}"))


def test_restored_ca_lets_the_backend_reach_every_engine_including_a_rebuilt_one(backup_lab: BackupLab) -> None:
    lab = backup_lab
    target = lab.target
    fleet = target.fleet
    pki = target.env.pki_dir
    [ran] = service.run(target, ["ops"], "pki")
    assert ran.ok, ran.error

    keep = Path(tempfile.mkdtemp(prefix="drape-pki-test-"))
    backend = keep / "backend"  # the backend's own copy of its client certificate, which it keeps
    ca_cert, client_cert, client_key = client_tls_files(pki)
    backend.mkdir()
    for source, name in ((ca_cert, "ca.pem"), (client_cert, "cert.pem"), (client_key, "key.pem")):
        shutil.copy2(source, backend / name)
    originals = {path.name: path.read_bytes() for path in ca_files(pki)}
    lost = keep / "lost-pki"
    try:
        pki.rename(lost)  # the ops machine's PKI directory is gone
        # Restored before the host comes back: `lab.up` issues the lab git server's certificate, and would make a
        # new CA where none is (production has no such step; its hosts are rebuilt by installimage).
        started = time.monotonic()
        restored = service.restore(target, "ops", "pki", "latest")
        print(f"[measure] PKI restore onto the ops machine: {time.monotonic() - started:.1f} s "
              f"({restored['restored_files']} files)")
        assert {path.name: path.read_bytes() for path in ca_files(pki)} == originals
        _rebuild_lab_host(REBUILT)

        started = time.monotonic()
        result = provision(target, [REBUILT], note=lambda line: print(f"[provision] {line}"))
        assert all(run.ok for run in result.runs), [run.error for run in result.runs]
        print(f"[measure] provisioning the rebuilt {REBUILT} with the restored CA: {time.monotonic() - started:.1f} s")

        for host in fleet.hosts:
            version = _engine_answers(host.name, str(host.private_address), fleet.network.docker_api_port, backend)
            assert version, host.name
        # The rebuilt host backs up again once its new key is authorized (`invoke backup.init`).
        outcomes = service.init(target, print)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    finally:
        if lost.exists():  # the lab gets its own PKI back as it was (the same files after a restore)
            if pki.exists():
                shutil.rmtree(pki)
            lost.rename(pki)
        shutil.rmtree(keep, ignore_errors=True)
