"""Lab fixtures for the runtime: the lab as the real deploys provision it (engines over mutual TLS, firewall,
pnpm store), the tiny preview image on every host, and a clean slate before each test. Like every lab fixture
they FAIL (never skip) when the lab cannot start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.config import FleetConfig
from drape_fleet.runtime.service import PreviewRuntime


@pytest.fixture(scope="session")
def runtime_lab(lab_fleet: FleetConfig, provisioned_lab: object) -> RuntimeLab:
    """The lab as provisioned by the real deploys (TLS engines, firewall, pnpm store), plus the tiny preview
    image on every host."""
    from drape_fleet.lab import previews as rl
    from drape_fleet.pki.paths import pki_dir

    settings = rl.lab_settings()
    try:
        pki = pki_dir("lab")
        rl.ship_tiny_image(lab_fleet, lambda m: print(f"[runtime-lab] {m}"))
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the runtime lab could not be prepared: {exc}", pytrace=False)
    return RuntimeLab(fleet=lab_fleet, settings=settings, pki=pki)


@pytest.fixture
def lab(runtime_lab: RuntimeLab) -> Iterator[RuntimeLab]:
    """The runtime lab with no preview, network or cordon of ours on any host, before and after the test."""
    runtime_lab.clean()
    yield runtime_lab
    runtime_lab.clean()


@pytest.fixture
def runtimes(lab: RuntimeLab) -> Iterator[Callable[..., PreviewRuntime]]:
    """Make runtimes for a test; every one is closed afterwards."""
    made: list[PreviewRuntime] = []

    def make(**kwargs: Any) -> PreviewRuntime:
        runtime = lab.runtime(**kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
