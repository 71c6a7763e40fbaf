"""`invoke bench.runtime`: the runtime's latencies on the lab, next to raw Docker, and placement at scale."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, say
from drape_fleet.paths import project_root


def _bench_module() -> ModuleType:
    path = project_root() / "bench" / "runtime.py"
    spec = importlib.util.spec_from_file_location("drape_bench_runtime", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@task(help={"count": "previews to start in each series (default 20)"})
def runtime(c: Context, count: int = 20) -> None:
    """On the provisioned lab: start latency via the runtime vs raw docker, hot start, placement at 100 x 2,000."""
    from drape_fleet.lab import previews
    from drape_fleet.lab.state import load_lab_fleet
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.runtime.engines import TlsFiles, tls_endpoints
    from drape_fleet.runtime.fleet import Fleet

    fleet, _ = load_lab_fleet()
    previews.ensure_tiny_image(say)
    engines = Fleet.from_endpoints(tls_endpoints(fleet, TlsFiles.from_pki_dir(pki_dir("lab"))), fleet.runtime)
    try:
        previews.ship_image(engines.engines(), previews.TINY_IMAGE, say)
    finally:
        engines.close()
    bench = _bench_module()
    results = bench.run(fleet, count=count, log=say)
    console.print(bench.render(results), highlight=False, soft_wrap=True)
