"""The runtime service as the lab runs it: deployed on every lab host by the real deploys (the session's
``provisioned_lab`` runs deploys/site.py, ingress and service included), reached over HTTPS through each host's
ingress, with the lab's callers' tokens. Like every lab fixture, it FAILS (never skips) when the lab cannot start.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from drape_fleet.config import FleetConfig


@dataclass(frozen=True)
class ServiceLab:
    fleet: FleetConfig
    urls: list[str]
    ca: Path
    tokens: dict[str, str]
    """The newest token of each lab caller (backend, ops, monitoring, bench, flood)."""
    container_prefix: str

    def container(self, host: str) -> str:
        return f"{self.container_prefix}-{host}"

    def on_host(self, host: str, command: str, *, timeout: float = 60) -> str:
        result = subprocess.run(["docker", "exec", self.container(host), "sh", "-c", command], capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{host}: `{command}` failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result.stdout


@pytest.fixture(scope="session")
def service_lab(lab_fleet: FleetConfig, provisioned_lab: object) -> ServiceLab:
    from drape_fleet.lab import previews as rl
    from drape_fleet.service_deploy import host as layout
    from drape_fleet.service_deploy.certificates import ingress_ca
    from drape_fleet.service_deploy.tokens import LAB_CALLERS, load_store, store_path

    try:
        rl.ship_tiny_image(lab_fleet, lambda m: print(f"[service-lab] {m}"))
        store = load_store(store_path("lab"), allow_in_repo=True)
        tokens = {name: store.newest(name).token for name in LAB_CALLERS}  # type: ignore[union-attr]
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the service lab could not be prepared: {exc}", pytrace=False)
    urls = layout.base_urls(lab_fleet)
    _every_instance_answers(urls, ingress_ca("lab"))
    return ServiceLab(fleet=lab_fleet, urls=urls, ca=ingress_ca("lab"), tokens=tokens,
                      container_prefix=rl.lab_settings().prefix)


def _every_instance_answers(urls: list[str], ca: Path, within: float = 120) -> None:
    """The deploy waits for its restart; this covers an instance restarting for any other reason."""
    import time

    import requests

    deadline = time.monotonic() + within
    for url in urls:
        while True:
            try:
                if requests.get(f"{url}/healthz", verify=str(ca), timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the service at {url} does not answer /healthz", pytrace=False)
            time.sleep(0.5)
