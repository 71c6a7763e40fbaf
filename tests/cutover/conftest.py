"""The cutover's lab fixtures: the lab provisioned by the real deploys, the tiny template on every host, and no
cutover state, start metrics or preview of ours on any host before and after each test. Like every lab fixture
they FAIL (never skip) when the lab cannot start."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drape_fleet.config import FleetConfig


def _on_every_host(fleet: FleetConfig, script: str) -> None:
    from drape_fleet.lab.previews import lab_settings

    settings = lab_settings()
    for host in fleet.host_names:
        subprocess.run(["docker", "exec", settings.container_name(host), "sh", "-c", script], check=True, timeout=120)


def _wipe(fleet: FleetConfig) -> None:
    """Every preview, network, cordon and cutover volume of ours on every lab host, removed."""
    _on_every_host(fleet, "docker ps -aq --filter label=drape.owner | xargs -r docker rm -f >/dev/null; "
                          "docker network ls -q --filter label=drape.owner | xargs -r docker network rm >/dev/null; "
                          "docker volume ls -q --filter label=drape.kind=cutover-state | xargs -r docker volume rm "
                          ">/dev/null; docker volume ls -q --filter label=drape.kind=cutover-metrics | xargs -r "
                          "docker volume rm >/dev/null; docker volume rm -f drape-cordon >/dev/null; true")


@contextlib.contextmanager
def _services_held(fleet: FleetConfig) -> Iterator[None]:
    """The hosts' runtime services stopped, then started again however the test ends. Their routers bring a host
    that lost the cutover state back to the newest generation another host holds: a wipe racing them comes back
    ("moved from generation 0 to 3" in the next test), and so does a restore the test expects at generation 1.
    These tests run backends of their own."""
    _on_every_host(fleet, "systemctl stop drape-runtime.service 2>/dev/null; true")
    try:
        yield
    finally:
        _on_every_host(fleet, "if systemctl cat drape-runtime.service >/dev/null 2>&1; then "
                              "systemctl start drape-runtime.service; fi")


@pytest.fixture(scope="session")
def cutover_lab(lab_fleet: FleetConfig, provisioned_lab: object) -> Path:
    """The lab's state directory, with the tiny preview template on every host."""
    from drape_fleet.lab import previews
    from drape_fleet.paths import lab_state_dir

    try:
        previews.ship_tiny_image(lab_fleet, lambda m: print(f"[cutover-lab] {m}"))
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the cutover lab could not be prepared: {exc}", pytrace=False)
    return lab_state_dir()


@pytest.fixture
def clean_lab(cutover_lab: Path, lab_fleet: FleetConfig) -> Iterator[Path]:
    with _services_held(lab_fleet):
        _wipe(lab_fleet)
        yield cutover_lab
        _wipe(lab_fleet)
