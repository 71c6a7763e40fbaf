"""``status()`` of a preview this process remembers as ready, after something else removed or stopped it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab


def test_status_stops_saying_ready_once_the_preview_is_gone_elsewhere(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    ours, theirs = runtimes(), runtimes()  # two backend processes' memories
    started = {w: ours.start(w, "u1", "tiny", wait=30) for w in ("st-stopped", "st-removed", "st-exited", "st-kept")}
    assert all(s.phase is Phase.READY for s in started.values()), started
    assert theirs.stop("st-stopped")  # another backend process stops it
    lab.on_host(started["st-removed"].host or "", "docker rm -f drape-pv-st-removed")  # as a reaper would
    lab.on_host(started["st-exited"].host or "", "docker stop -t 1 drape-pv-st-exited")  # the dev server died
    for workspace in ("st-stopped", "st-removed", "st-exited"):
        assert ours.status(workspace) is None, workspace
    kept = ours.status("st-kept")
    assert kept is not None and kept.phase is Phase.READY and kept.container_id == started["st-kept"].container_id
    assert ours.start("st-kept", "u1", "tiny").container_id == started["st-kept"].container_id  # still a hot start
    again = ours.start("st-stopped", "u1", "tiny", wait=30)  # forgotten, so a start places it anew
    assert again.phase is Phase.READY and again.container_id != started["st-stopped"].container_id
    elsewhere = theirs.start("st-removed", "u1", "tiny", wait=30)  # placed anew by the other process
    seen = ours.status("st-removed")
    assert seen is not None and seen.phase is Phase.READY and seen.container_id == elsewhere.container_id
