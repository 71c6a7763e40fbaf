"""Many threads and two backend processes at once; a host's engine dying in the middle of a run."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
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


@pytest.fixture
def engine_killer(lab: RuntimeLab) -> Iterator[Callable[[str], None]]:
    killed: list[str] = []

    def kill(host: str) -> None:
        lab.on_host(host, "systemctl stop docker.socket docker.service")
        killed.append(host)

    yield kill
    for host in killed:
        lab.on_host(host, "systemctl start docker.service", timeout=120)
        lab.on_host(host, "for i in $(seq 100); do docker version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1")


def test_a_host_dies_mid_run_and_no_request_is_lost(lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime],
                                                    engine_killer: Callable[[str], None]) -> None:
    runtime = runtimes(background=True, reaper=False, queue_timeout_s=90)
    first = [f"f-{i:02d}" for i in range(12)]
    later = [f"f-{i:02d}" for i in range(12, 30)]
    for status in ThreadPoolExecutor(12).map(lambda w: runtime.start(w, "u1", "tiny", wait=30), first):
        assert status.phase is Phase.READY, status
    with ThreadPoolExecutor(max_workers=18) as pool:
        futures = [pool.submit(runtime.start, w, "u1", "tiny", wait=90) for w in later]
        time.sleep(0.3)  # some of these are being placed (some on ax1) when its engine goes away
        engine_killer("ax1")
        results = [f.result() for f in futures]
    assert runtime.fleet["ax1"].health.failures > 0  # the run did run into the dead engine
    # every request was served: ready (on a survivor, or on ax1 if it was ready before ax1 died)
    assert all(r.phase is Phase.READY for r in results), [(r.workspace, r.phase, r.host, r.error) for r in results]
    # what was on ax1 is now reported lost; the next request places it on a survivor
    on_ax1 = [w for w in first + later if (s := runtime.status(w)) and s.host == "ax1"]
    assert on_ax1
    lost = [runtime.status(w) for w in on_ax1]
    assert all(s is not None and s.phase is Phase.LOST for s in lost), lost
    again = [runtime.start(w, "u1", "tiny", wait=30) for w in on_ax1]
    assert all(s.phase is Phase.READY and s.host in ("ax2", "ax3") for s in again), again
    # two of three hosts carry the whole load (30 previews of 256 MiB)
    serving = {s.workspace for s in runtime.previews(probe=False) if s.host in ("ax2", "ax3")}
    assert serving == set(first) | set(later)
    for host in ("ax2", "ax3"):
        assert lab.memory_reserved(host) <= CAPACITY
    hosts = {h.name: h for h in runtime.hosts()}
    assert not hosts["ax1"].reachable and hosts["ax2"].reachable


@pytest.fixture
def network_cutter(lab: RuntimeLab) -> Iterator[Callable[[str], None]]:
    """Cut a lab host off the private network (the vSwitch stand-in): its engine's packets go nowhere."""
    network = lab.settings.private_network
    cut: list[str] = []

    def disconnect(host: str) -> None:
        subprocess.run(["docker", "network", "disconnect", network, lab.container(host)], check=True)
        cut.append(host)

    yield disconnect
    for host in cut:
        address = str(lab.fleet.host(host).private_address)
        subprocess.run(["docker", "network", "connect", "--ip", address, network, lab.container(host)], check=True)


def test_a_host_cut_off_the_network_is_reported_lost_and_replaced(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime], network_cutter: Callable[[str], None]) -> None:
    runtime = runtimes(background=True, reaper=False)
    for i in range(6):
        assert runtime.start(f"n-{i}", "u1", "tiny", wait=30).phase is Phase.READY
    on_ax2 = [w for w in (f"n-{i}" for i in range(6)) if (s := runtime.status(w)) and s.host == "ax2"]
    assert on_ax2
    network_cutter("ax2")
    deadline = time.monotonic() + 30  # noticed by the health pings alone, no request needed
    while time.monotonic() < deadline and runtime.status(on_ax2[0]).phase is not Phase.LOST:  # type: ignore[union-attr]
        time.sleep(0.5)
    assert all(runtime.status(w).phase is Phase.LOST for w in on_ax2)  # type: ignore[union-attr]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda w: runtime.start(w, "u1", "tiny", wait=60), [*on_ax2, "n-new-1", "n-new-2"]))
    assert all(r.phase is Phase.READY and r.host in ("ax1", "ax3") for r in results), results
    down = {h.name: h for h in runtime.hosts()}["ax2"]
    assert not down.reachable
