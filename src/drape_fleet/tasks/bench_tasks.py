"""`invoke bench.runtime`: the runtime's latencies on the lab, next to raw Docker, and placement at scale."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, fail, say
from drape_fleet.paths import project_root

if TYPE_CHECKING:
    from drape_fleet.config import FleetConfig


def _bench_module(name: str = "runtime") -> ModuleType:
    path = project_root() / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"drape_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (and worker processes) look their module up by name
    spec.loader.exec_module(module)
    return module


def _lab_with_tiny_image() -> tuple[FleetConfig, Path]:
    """The lab's fleet (and its file), with the tiny template built and shipped to every host."""
    from drape_fleet.lab import previews
    from drape_fleet.lab.state import load_lab_fleet

    fleet, fleet_file = load_lab_fleet()
    previews.ship_tiny_image(fleet, say)
    return fleet, fleet_file


@task(help={"count": "previews to start in each series (default 20)"})
def runtime(c: Context, count: int = 20) -> None:
    """On the provisioned lab: start latency via the runtime vs raw docker, hot start, placement at 100 x 2,000."""
    fleet, _ = _lab_with_tiny_image()
    bench = _bench_module()
    results = bench.run(fleet, count=count, log=say)
    console.print(bench.render(results), highlight=False, soft_wrap=True)


@task(help={"count": "previews per series (default 10)", "seconds": "length of the throughput run (default 10)",
            "connections": "concurrent connections for the throughput run (default 16)"})
def service(c: Context, count: int = 10, seconds: float = 10, connections: int = 16) -> None:
    """On the lab with the service deployed: the HTTP service's overhead over the imported module, and status/s."""
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.service_deploy import host as layout
    from drape_fleet.service_deploy.certificates import ingress_ca
    from drape_fleet.service_deploy.tokens import load_store, store_path

    fleet, fleet_file = _lab_with_tiny_image()
    bench_token = load_store(store_path("lab"), allow_in_repo=True).newest("bench")
    if bench_token is None or not layout.base_urls(fleet):
        fail("deploy the service on the lab first: invoke provision --all --env lab")
    bench = _bench_module("service")
    results = bench.run(fleet, fleet_file, pki=pki_dir("lab"), ingress_url=layout.base_urls(fleet)[0],
                        ingress_ca=ingress_ca("lab"), token=bench_token.token, count=count, status_rounds=5,
                        seconds=seconds, connections=connections, log=say)
    console.print(bench.render(results), highlight=False, soft_wrap=True)
