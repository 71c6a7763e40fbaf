"""Many threads and two backend processes at once, never over a host's capacity. (Hosts that fail during such a
run: the fault suite, ``test_faults_lab``.)"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from runtime_lab_support import RuntimeLab, collect

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab

GIB = 1024**3
CAPACITY = 4 * GIB


class CapacityWatch:
    """Samples every host's reserved memory (running containers' limits, read by the outer engine) until stopped."""

    def __init__(self, lab: RuntimeLab) -> None:
        self.lab = lab
        self.peaks: dict[str, int] = dict.fromkeys(lab.fleet.host_names, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for host in self.lab.fleet.host_names:
                with contextlib.suppress(AssertionError):  # a host whose engine a test stopped
                    self.peaks[host] = max(self.peaks[host], self.lab.memory_reserved(host))
            self.samples += 1

    def __enter__(self) -> CapacityWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_fifty_requests_from_threads_and_a_second_process_never_overfill_a_host(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    # 50 previews of 256 MiB against 3 x 4 GiB: 48 fit, so two of the fifty must wait for capacity.
    runtime = runtimes(queue_timeout_s=90)
    ours = [f"c-{i:02d}" for i in range(25)]
    theirs = [f"c-{i:02d}" for i in range(25, 50)]
    with CapacityWatch(lab) as watch:
        other = lab.worker({"action": "start", "workspaces": theirs, "wait": 90, "overrides": {"queue_timeout_s": 90}})
        with ThreadPoolExecutor(max_workers=25) as pool:
            futures = [pool.submit(runtime.start, w, "u-main", "tiny", wait=90) for w in ours]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # once the fleet is full, free two previews
                placed = sum(len(lab.owned(h, all_states=False)) for h in lab.fleet.host_names)
                if placed >= 48:
                    break
                time.sleep(0.5)
            assert placed >= 48
            freed = [s for s in (runtime.status(w) for w in ours) if s and s.phase is Phase.READY][:2]
            for status in freed:
                assert runtime.stop(status.workspace)
            mine = [f.result() for f in futures]
        theirs_results = collect(other)["results"]
    assert watch.samples > 3
    assert all(peak <= CAPACITY for peak in watch.peaks.values()), watch.peaks
    stopped = {s.workspace for s in freed}
    not_ready = [s for s in mine if s.workspace not in stopped and s.phase is not Phase.READY]
    not_ready += [r for r in theirs_results if r["phase"] != "ready"]
    assert not not_ready, not_ready
    running = [c for h in lab.fleet.host_names for c in lab.owned(h, all_states=False)]
    names = Counter(c["Names"] for c in running)
    assert len(running) == 48 and max(names.values()) == 1  # every workspace exactly once
    for host in lab.fleet.host_names:
        assert lab.memory_reserved(host) <= CAPACITY
