"""The certificates the runtime service needs, made on the ops machine by the project's PKI functions:

* the **ingress CA** (``<pki dir>/ingress/``), a CA of its own that signs only the HTTPS certificates of the
  service's ingress, so trusting it (the Node backend's ``NODE_EXTRA_CA_CERTS``) trusts nothing else; each
  host's ingress certificate names its public and private address and its name;
* each instance's **client certificate** for the Docker APIs (``clients/runtime-<host>`` in the fleet's PKI,
  signed by the Docker API CA like the backend's): one per host, so one can be replaced alone.

The lab makes its ingress CA on first use; production's is made once by ``invoke service.pki`` (like
``invoke pki.init``). Deploys run one process per host in parallel: a lock makes sure one CA is made.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.config import FleetConfig, Host
from drape_fleet.pki.authority import Issued, PkiError, init_ca, issue_client, issue_host, migrate_layout
from drape_fleet.pki.paths import ca_files, client_tls_files, host_tls_files, pki_dir, trust_bundle
from drape_fleet.service_deploy.locks import file_lock

INGRESS = "ingress"


def ingress_dir(environment: str) -> Path:
    return pki_dir(environment) / INGRESS


def ingress_ca(environment: str) -> Path:
    """The file callers trust for the service's HTTPS (``NODE_EXTRA_CA_CERTS``): the ingress CA's trust bundle
    (every CA trusted now: two while ``pki.rotate`` moves to a new one)."""
    return trust_bundle(ingress_dir(environment))


def runtime_client(host: str) -> str:
    return f"runtime-{host}"


@dataclass(frozen=True)
class InstanceCertificates:
    ingress_cert: Path
    ingress_key: Path
    engine_ca: Path
    client_cert: Path
    client_key: Path
    notes: tuple[str, ...]


def init_ingress_ca(environment: str, *, allow_in_repo: bool = False) -> tuple[Path, bool]:
    directory = ingress_dir(environment)
    with _lock(pki_dir(environment)):
        return init_ca(directory, allow_in_repo=allow_in_repo)


def ensure_instance(fleet: FleetConfig, host: Host, *, lab: bool) -> InstanceCertificates:
    """The ingress and client certificates of ``host``'s instance, issued or renewed as needed (never a CA
    outside the lab: that is ``invoke service.pki``). Raises ``PkiError`` with the fix."""
    environment = fleet.environment.name
    docker_pki = pki_dir(environment)
    directory = ingress_dir(environment)
    notes: list[str] = []
    with _lock(docker_pki):
        migrate_layout(directory)  # an ingress CA made before the PKI's split layout
        if not ca_files(directory)[0].exists():
            if not lab:
                raise PkiError(f"no ingress CA in {directory}. Fix: run `invoke service.pki` once, then deploy again")
            init_ca(directory, allow_in_repo=True)
            notes.append(f"made the lab's ingress CA in {directory}")
        ingress = issue_host(directory, host.name, [str(host.public_address), str(host.private_address)])
        client = issue_client(docker_pki, runtime_client(host.name))
    notes += [f"{what} ({issued.reason})" for what, issued in (("issued the ingress certificate", ingress),
                                                               ("issued the engine client certificate", client))
              if issued.created]
    _, client_cert, client_key = client_tls_files(docker_pki, runtime_client(host.name))
    engine_ca = trust_bundle(docker_pki)  # what the engines' certificates chain to, rotation included
    cert, key = host_tls_files(directory, host.name)
    return InstanceCertificates(cert, key, engine_ca, client_cert, client_key, tuple(notes))


def _lock(directory: Path) -> AbstractContextManager[None]:
    return file_lock(directory / ".service-pki.lock")


__all__ = ["InstanceCertificates", "Issued", "PkiError", "ensure_instance", "ingress_ca", "init_ingress_ca"]
