"""The host suite: what a provisioned host must be, read from the host itself (testinfra over SSH).

Run it with `invoke verify --host NAME|--all [--env lab]`. Expected values come from the fleet file (the
spec ops wrote), never from the deploys or their builders: these checks read the host, not our templates.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from drape_fleet.config import FleetConfig, Host, load_fleet

FLEET_ENV = "DRAPE_VERIFY_FLEET_FILE"
PROBE_IMAGE = "drape-verify/probe:busybox"


@pytest.fixture(scope="session")
def fleet() -> FleetConfig:
    path = os.environ.get(FLEET_ENV)
    if not path:
        pytest.fail(f"{FLEET_ENV} is not set: run this suite through `invoke verify`", pytrace=False)
    return load_fleet(path)


@pytest.fixture(scope="module")
def me(host: Any, fleet: FleetConfig) -> Host:
    return fleet.host(host.backend.get_hostname())


@pytest.fixture(scope="module")
def in_container(host: Any) -> bool:
    """A lab stand-in (systemd-detect-virt says docker): services that refuse containers are only enabled."""
    return host.run("systemd-detect-virt --container").stdout.strip() not in ("", "none")


@pytest.fixture(scope="module")
def docker_info(host: Any) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(host.check_output("docker info --format '{{json .}}'"))
    return info


@pytest.fixture(scope="module")
def probe_image(host: Any) -> str:
    """A one-binary image (the host's static busybox) to run probes in: no registry is needed."""
    if host.run(f"docker image inspect {PROBE_IMAGE}").rc != 0:
        busybox = host.check_output("command -v busybox || true").strip()
        if not busybox:
            pytest.fail("no busybox on the host to build the probe image from (base installs busybox-static)")
        script = (f"set -e; d=$(mktemp -d); mkdir -p $d/bin; cp {busybox} $d/bin/busybox; "
                  "for a in sh cat grep nc sleep ls id echo; do ln -s busybox $d/bin/$a; done; "
                  f"tar -C $d -c . | docker import -c 'LABEL drape.verify=probe' - {PROBE_IMAGE}; rm -rf $d")
        host.check_output(f"sh -c {shlex.quote(script)}")
    return PROBE_IMAGE


@pytest.fixture
def container(host: Any, probe_image: str) -> Iterator[Any]:
    """Run a throwaway probe container (removed afterwards): ``container("-p 18080:8080", "nc -lk -p 8080")``."""
    started: list[str] = []

    def run(options: str, command: str) -> str:
        cid = host.check_output(f"docker run -d --label drape.verify=probe {options} {probe_image} {command}").strip()
        started.append(cid)
        return cid

    yield run
    for cid in started:
        host.run(f"docker rm -f {cid}")
