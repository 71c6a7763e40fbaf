"""Placement order and queueing against the lab hosts' real engines."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab

GIB = 1024**3
BIG = PreviewResources(cpus=0.5, memory_mib=1024, pids_limit=512, disk_gib=2, tmp_mib=64)
"""A quarter of a lab host: four fill one, twelve fill the lab."""


def test_start_places_on_the_most_free_host_then_the_next(lab: RuntimeLab,
                                                          runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    first = runtime.start("p-a", "u1", "tiny", resources=BIG, wait=30)
    assert first.phase is Phase.READY, first.error
    # ax1 now has less free memory than ax2/ax3: the next two go there, in name order on ties.
    second = runtime.start("p-b", "u1", "tiny", wait=30)
    third = runtime.start("p-c", "u1", "tiny", wait=30)
    assert [first.host, second.host, third.host] == ["ax1", "ax2", "ax3"]
    fourth = runtime.start("p-d", "u1", "tiny", wait=30)
    assert fourth.host in ("ax2", "ax3")  # 256 MiB used there against 1 GiB on ax1
    # independently: the engines hold exactly these, with the limits placement counted
    assert lab.memory_reserved("ax1") == 1 * GIB
    assert {c["Names"] for c in lab.owned("ax1")} == {"drape-pv-p-a"}
    # a hot start returns the same live container at once
    started = time.monotonic()
    again = runtime.start("p-a", "u1", "tiny")
    assert again.phase is Phase.READY and again.container_id == first.container_id
    assert time.monotonic() - started < 0.5


def test_full_fleet_queues_in_order_and_places_when_capacity_frees(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes(queue_timeout_s=60)
    workspaces = [f"q-{i:02d}" for i in range(12)]
    threads = [threading.Thread(target=runtime.start, args=(w, "u1", "tiny"),
                                kwargs={"resources": BIG, "wait": 60}) for w in workspaces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = {w: runtime.status(w) for w in workspaces}
    assert all(s is not None and s.phase is Phase.READY for s in statuses.values()), statuses
    assert Counter(s.host for s in statuses.values() if s) == {"ax1": 4, "ax2": 4, "ax3": 4}

    waiting = [runtime.start(f"q-wait-{i}", "u1", "tiny", resources=BIG) for i in range(2)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = [runtime.status(f"q-wait-{i}") for i in range(2)]  # type: ignore[misc]
        if all(s is not None and s.phase is Phase.QUEUED for s in waiting):
            break
        time.sleep(0.1)
    assert [(s.phase, s.queue_position) for s in waiting] == [(Phase.QUEUED, 1), (Phase.QUEUED, 2)]
    for host in lab.fleet.host_names:
        assert lab.memory_reserved(host) <= 4 * GIB

    freed = statuses["q-05"]
    assert freed is not None
    assert runtime.stop("q-05")
    first = runtime.wait_ready("q-wait-0", 30)
    assert first.phase is Phase.READY and first.host == freed.host
    assert first.waited_s is not None and first.waited_s > 0
    second = runtime.status("q-wait-1")
    assert second is not None and second.phase is Phase.QUEUED and second.queue_position == 1


def test_queue_times_out_and_prewarm_does_not_queue(lab: RuntimeLab,
                                                    runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes(queue_timeout_s=3)
    for host in ("ax2", "ax3"):
        runtime.cordon(host, "test")
    for i in range(4):
        assert runtime.start(f"t-{i}", "u1", "tiny", resources=BIG, wait=30).phase is Phase.READY
    prewarm = runtime.project_opened("t-pre", "u1", "tiny", resources=BIG)
    assert (prewarm.phase, prewarm.queue_position) == (Phase.PLACING, None)  # accepted at once, never in line
    status = runtime.wait_ready("t-pre", 10)
    assert status.phase is Phase.FAILED and "not pre-warmed" in (status.error or ""), status
    started = time.monotonic()
    late = runtime.start("t-late", "u1", "tiny", resources=BIG, wait=20)
    assert late.phase is Phase.FAILED and "no capacity" in (late.error or "")
    assert 2.5 < time.monotonic() - started < 10
