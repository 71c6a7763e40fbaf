"""A real framework template end to end on the lab (React + Vite starter): build, ship, start, HTTP ready.

On a fresh machine the Node base, the template and shipping it to three hosts take about three minutes; CI
runs it every time. For a quick local run, leave it out with ``-m "not templates"``.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = [pytest.mark.lab, pytest.mark.templates]


def test_react_template_starts_and_serves(lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    from drape_fleet.lab import previews

    runtime = runtimes()
    tag = previews.ensure_lab_template("react", lab.fleet, print)
    previews.ship_image(runtime.fleet.engines(), tag, print)
    phases: list[Phase] = []
    started = time.monotonic()
    status = runtime.start("tpl-react", "u1", "react",
                           resources=PreviewResources(cpus=1, memory_mib=768, pids_limit=1024, disk_gib=2, tmp_mib=64))
    while not status.phase.final and time.monotonic() - started < 180:
        if not phases or phases[-1] is not status.phase:
            phases.append(status.phase)
        time.sleep(0.2)
        status = runtime.status("tpl-react")  # type: ignore[assignment]
    assert status.phase is Phase.READY, (status.error, phases)
    assert Phase.COMPILING in phases
    body = urllib.request.urlopen(status.url, timeout=10).read().decode()  # noqa: S310 - lab address
    assert 'id="root"' in body and "/src/main.jsx" in body
    module = urllib.request.urlopen(f"{status.url}/src/main.jsx", timeout=30).read().decode()  # noqa: S310
    assert "Drape preview (React)" in module  # Vite compiled the app's module on request
