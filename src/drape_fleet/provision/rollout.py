"""Rolling out new Docker API certificates one host at a time (`invoke pki.rotate`): the docker deploy puts
the host's files in place and restarts dockerd (live-restore keeps every preview running), then the API must
answer the backend's client certificate over mutual TLS before the next host is touched."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from drape_fleet.config import FleetConfig, Host
from drape_fleet.console import Log
from drape_fleet.environments import FleetTarget
from drape_fleet.pki.paths import client_tls_files
from drape_fleet.provision.daemon import docker_api_url
from drape_fleet.provision.service import provision

ANSWER_WITHIN_S = 60


class RolloutStopped(RuntimeError):
    """A host did not take its new files, or its API did not answer afterwards; later hosts were not touched."""


def api_answers(fleet: FleetConfig, host: Host, pki: Path) -> str:
    """The engine's version, over mutual TLS with the backend's files; raises when it does not answer."""
    import docker
    from docker.tls import TLSConfig

    ca, cert, key = client_tls_files(pki)
    url = docker_api_url(fleet, host.name).replace("tcp://", "https://")
    client = docker.DockerClient(base_url=url, version=fleet.runtime.api_version, timeout=10,
                                 tls=TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca), verify=True))
    client.api.trust_env = False  # $REQUESTS_CA_BUNDLE would replace our CA
    try:
        return str(client.version()["Version"])
    finally:
        client.close()


def roll_out(target: FleetTarget, hosts: Sequence[Host], *, note: Log,
             answers: Callable[[FleetConfig, Host, Path], str] = api_answers) -> None:
    for host in hosts:
        note(f"{host.name}: installing the new TLS files (docker deploy; previews keep running)")
        result = provision(target, [host.name], only="docker")
        run = result.runs[0]
        if not run.ok:
            raise RolloutStopped(f"{host.name}: the docker deploy failed ({run.error}); hosts after it were not "
                                 "touched. Fix it and run the same command again")
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while True:
            try:
                version = answers(target.fleet, host, target.env.pki_dir)
                break
            except Exception as exc:  # any failure to answer is retried until the deadline
                if time.monotonic() > deadline:
                    raise RolloutStopped(f"{host.name}: the Docker API did not answer with the new certificates "
                                         f"within {ANSWER_WITHIN_S} s ({exc}); hosts after it were not "
                                         "touched") from None
                time.sleep(1)
        note(f"{host.name}: the API answers with the new files (Docker {version})")
