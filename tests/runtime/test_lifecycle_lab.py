"""Phases, persistence and the reaper (two processes at once), restarts rebuilding state, drain."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab, collect

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab


def test_phases_follow_the_dev_server_not_the_container(lab: RuntimeLab,
                                                        runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    first = runtime.start("ph-1", "u1", "tiny", env={"TINY_INSTALL_S": "2", "TINY_COMPILE_S": "2"})
    seen = [first.phase]
    running_before_ready = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = runtime.status("ph-1")
        assert status is not None
        if status.phase is not seen[-1]:
            seen.append(status.phase)
        if status.phase is not Phase.READY and lab.owned("ax1", all_states=False):
            running_before_ready = True
        if status.phase.final:
            break
        time.sleep(0.05)
    assert running_before_ready
    assert [p for p in seen if p is not Phase.STARTING] == [Phase.PLACING, Phase.INSTALLING, Phase.COMPILING,
                                                          Phase.READY], seen
    failed = runtime.start("ph-2", "u1", "tiny", env={"TINY_FAIL": "pnpm install exited with 1"}, wait=30)
    assert failed.phase is Phase.FAILED
    assert "pnpm install exited with 1" in (failed.error or "")


def test_reaper_races_between_two_processes(lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    persist = {"persist_minutes": 0.05}  # 3 s
    runtime = runtimes(**persist)
    active, idle = ["r-a0", "r-a1", "r-a2"], ["r-i0", "r-i1", "r-i2"]
    ids = {}
    for workspace in active + idle:
        status = runtime.start(workspace, "u1", "tiny", wait=30)
        assert status.phase is Phase.READY
        ids[workspace] = status.container_id
    stop = threading.Event()
    changed: list[str] = []

    def keep_active() -> None:  # the users of the active previews come back again and again (hot starts)
        while not stop.is_set():
            for workspace in active:
                status = runtime.start(workspace, "u1", "tiny")
                if status.container_id != ids[workspace] or status.phase is not Phase.READY:
                    changed.append(f"{workspace}: {status.phase} {status.container_id}")
            time.sleep(0.3)

    toucher = threading.Thread(target=keep_active)
    toucher.start()
    try:
        reapers = [lab.worker({"action": "reap", "seconds": 9, "overrides": persist}) for _ in range(2)]
        reports = [r for process in reapers for r in collect(process)["reports"]]
    finally:
        stop.set()
        toucher.join()
    assert not changed, changed  # no active preview was reaped (or replaced)
    assert not [e for r in reports for e in r["errors"]]
    removed = Counter(item.split("/", 1)[1].split(" ", 1)[0] for r in reports for item in r["removed"])
    assert removed == dict.fromkeys(idle, 1), removed  # each idle preview removed exactly once
    names = sorted(c["Names"] for h in lab.fleet.host_names for c in lab.owned(h))
    assert names == sorted(f"drape-pv-{w}" for w in active)  # no idle survivor, no tombstone left
    # Networks went with them. A spare being made at this moment (by the hosts' own services too) is a network
    # whose holder is not there yet, for milliseconds: a leak is one still there seconds later.
    deadline = time.monotonic() + 5
    def orphans() -> list[str]:
        return [n for h in lab.fleet.host_names for n in lab.orphan_networks(h)]

    while orphans() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert orphans() == []


def test_a_restarted_backend_rebuilds_everything_from_the_engines(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    before = runtimes()
    started = {w: before.start(w, f"user-{w}", "tiny", project=f"proj-{w}", wait=30) for w in ("rs-1", "rs-2", "rs-3")}
    before.cordon("ax3", "maintenance window")
    before.close()

    after = runtimes()  # a new process's view: nothing in memory
    listed = {s.workspace: s for s in after.previews()}
    assert set(listed) == set(started)
    for workspace, original in started.items():
        seen = listed[workspace]
        assert (seen.user, seen.project, seen.framework, seen.host, seen.url, seen.container_id, seen.phase) == \
            (f"user-{workspace}", f"proj-{workspace}", "tiny", original.host, original.url, original.container_id,
             Phase.READY)
    hosts = {h.name: h for h in after.hosts()}
    assert hosts["ax3"].cordoned and hosts["ax3"].cordon_reason == "maintenance window"
    assert sum(h.previews for h in hosts.values()) == 3
    t0 = time.monotonic()
    hot = after.start("rs-1", "user-rs-1", "tiny")
    assert hot.phase is Phase.READY and hot.container_id == started["rs-1"].container_id
    assert time.monotonic() - t0 < 1.5
    fresh = after.start("rs-4", "u", "tiny", wait=30)
    assert fresh.host != "ax3"  # the cordon survived the restart


def test_drain_stops_idle_previews_and_moves_the_rest(lab: RuntimeLab,
                                                      runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    runtime.cordon("ax2")
    runtime.cordon("ax3")
    for workspace in ("d-idle", "d-busy"):
        assert runtime.start(workspace, "u1", "tiny", wait=30).host == "ax1"
    runtime.uncordon("ax2")
    runtime.uncordon("ax3")
    stop = threading.Event()

    def busy() -> None:
        while not stop.wait(0.5):
            runtime.activity("d-busy")
            runtime.flush_activity()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        report = runtime.drain("ax1", idle_s=2.5, deadline_s=5, poll_s=0.5)
    finally:
        stop.set()
        worker.join()
    assert report.done and report.stopped == ["d-idle"]
    assert len(report.moved) == 1 and report.moved[0].startswith("d-busy -> ax")
    moved = runtime.status("d-busy")
    assert moved is not None and moved.phase is Phase.READY and moved.host in ("ax2", "ax3")
    assert lab.owned("ax1") == []
    hosts = {h.name: h for h in runtime.hosts()}
    assert hosts["ax1"].cordoned
    runtime.uncordon("ax1")
    assert not {h.name: h for h in runtime.hosts()}["ax1"].cordoned
