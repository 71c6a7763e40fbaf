"""The fault suite (issue 8): 50 concurrent starts from two backend processes with overlapping workspaces, and during
them one of three hosts is killed, cut from the private network, black-holed, or has its engine restarted.

After each, checked through the outer engine (an observer that shares no code with the runtime): every workspace
is ready on a host that answers; once the faulted host is back and one reaper pass has run, no workspace has two
serving containers, no host is over its capacity (sampled all along), no preview of a workspace stopped during the
fault is running, and no preview of a user who kept working through the fault was removed.

Kept lean for CI: the tiny preview image, 64 MiB previews, health checks of 1.5 s, one pass per fault.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from runtime_lab_support import RuntimeLab, collect
from test_concurrency_lab import CAPACITY, CapacityWatch

from drape_fleet.runtime.engines import HostState
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab

TARGET = "ax2"
START_WAIT_S = 150
"""How long a start may take here. On a quiet 2-core machine they are all ready in well under a minute; on one
shared by several lab users (load average 50-70) 90 s was not always enough: a few were still being placed, slow
rather than wrong, and the invariants below were never checked."""
FAST = {
    "preview": {"cpus": 0.25, "memory_mib": 64, "pids_limit": 256, "disk_gib": 1, "tmp_mib": 16},
    "request_timeout_s": 4, "snapshot_timeout_s": 2, "probe_timeout_s": 1.5, "backoff_initial_s": 0.5,
    "backoff_max_s": 2, "queue_timeout_s": START_WAIT_S, "persist_minutes": 2, "activity_flush_s": 1,
    "reaper_interval_s": 3600, "slow_call_timeout_s": 60,
}
OURS = [f"f-{i:02d}" for i in range(30)]
THEIRS = [f"f-{i:02d}" for i in range(20, 50)]
"""Two processes, fifty workspaces, ten of them started by both at once."""


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[RuntimeLab, str], None]
    heal: Callable[[RuntimeLab, str], None]
    leaves_copies: bool
    """Whether the faulted host's previews keep running through it (then they are duplicates when it is back)."""


def _engine_answers(lab: RuntimeLab, host: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(["docker", "exec", lab.container(host), "docker", "version"], capture_output=True,
                              check=False, timeout=30)
        if done.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{host}'s engine did not come back")


def _kill(lab: RuntimeLab, host: str) -> None:
    subprocess.run(["docker", "kill", lab.container(host)], check=True, capture_output=True)


def _restart(lab: RuntimeLab, host: str) -> None:
    subprocess.run(["docker", "start", lab.container(host)], check=True, capture_output=True)
    _engine_answers(lab, host)


def _cut(lab: RuntimeLab, host: str) -> None:
    subprocess.run(["docker", "network", "disconnect", lab.settings.private_network, lab.container(host)],
                   check=True, capture_output=True)


def _reconnect(lab: RuntimeLab, host: str) -> None:
    address = str(lab.fleet.host(host).private_address)
    subprocess.run(["docker", "network", "connect", "--ip", address, lab.settings.private_network,
                    lab.container(host)], check=True, capture_output=True)


def _black_hole(lab: RuntimeLab, host: str) -> None:
    """Packets from the backend dropped silently in the host's own network namespace (a hung network): nothing is
    refused, every call waits for its timeout."""
    backend = str(lab.settings.private_gateway)
    lab.on_host(host, "nft add table ip drape_fault && nft add chain ip drape_fault pre "
                      "'{ type filter hook prerouting priority -400; policy accept; }' && "
                      f"nft add rule ip drape_fault pre ip saddr {backend} drop")


def _unblock(lab: RuntimeLab, host: str) -> None:
    lab.on_host(host, "nft delete table ip drape_fault")


def _restart_engine(lab: RuntimeLab, host: str) -> None:
    lab.on_host(host, "systemctl restart docker.service", timeout=120)


FAULTS = [
    Fault("killed", _kill, _restart, leaves_copies=False),
    Fault("cut", _cut, _reconnect, leaves_copies=True),
    Fault("black-holed", _black_hole, _unblock, leaves_copies=True),
    Fault("engine-restarted", _restart_engine, lambda lab, host: _engine_answers(lab, host), leaves_copies=True),
]


@pytest.fixture
def healer(lab: RuntimeLab) -> Iterator[list[Callable[[], None]]]:
    """Whatever a test broke is healed afterwards, even when it fails half-way."""
    pending: list[Callable[[], None]] = []
    yield pending
    for heal in pending:
        try:
            heal()
        except Exception as exc:
            print(f"[faults] healing failed: {exc}")


def running_copies(lab: RuntimeLab) -> Counter[str]:
    """How many running containers each workspace has, across the hosts, as their engines list them."""
    counts: Counter[str] = Counter()
    for host in lab.fleet.host_names:
        for container in lab.owned(host, all_states=False):
            if container["Names"].startswith("drape-pv-"):
                counts[container["Names"].removeprefix("drape-pv-")] += 1
    return counts


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_host_fails_during_fifty_starts_from_two_processes(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime], healer: list[Callable[[], None]],
        fault: Fault) -> None:
    began = time.monotonic()
    runtime = runtimes(background=True, reaper=False, **FAST)
    other = lab.worker({"action": "start", "workspaces": THEIRS, "user": "u1", "wait": START_WAIT_S,
                        "background": True, "overrides": FAST})
    with CapacityWatch(lab) as watch:
        with ThreadPoolExecutor(max_workers=len(OURS)) as pool:
            futures = [pool.submit(runtime.start, w, "u1", "tiny", wait=START_WAIT_S) for w in OURS]
            deadline = time.monotonic() + 30
            while len(lab.owned(TARGET, all_states=False)) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)  # some previews run there, others are on their way, when it fails
            fault.inject(lab, TARGET)
            healer.append(lambda: fault.heal(lab, TARGET))
            first = [f.result() for f in futures]
        theirs = collect(other)["results"]
        # Ready, or lost with the struck host: a preview that turned ready there a moment before it went down is
        # reported lost (the backend starts it again, below). Nothing fails, and nothing is lost elsewhere.
        assert all(s.phase is Phase.READY or (s.phase is Phase.LOST and s.host == TARGET) for s in first), [
            (s.workspace, s.phase, s.host, s.error) for s in first if s.phase is not Phase.READY]
        assert all(r["phase"] == "ready" or (r["phase"] == "lost" and r["host"] == TARGET) for r in theirs), [
            r for r in theirs if r["phase"] != "ready"]
        struck = sorted({s.workspace for s in first if s.host == TARGET} |
                        {r["workspace"] for r in theirs if r["host"] == TARGET})
        assert len(struck) >= 3, "the fault came too late to strike any preview"
        if fault.leaves_copies:  # the host stops answering its health checks: it is down for this process
            deadline = time.monotonic() + 20
            while runtime.fleet[TARGET].state is not HostState.DOWN and time.monotonic() < deadline:
                time.sleep(0.1)

        stopped, active = struck[:2], struck[2:5]
        for workspace in stopped:  # the user closes it while its host is out
            runtime.stop(workspace)
        keep_working = threading.Event()

        def users_working() -> None:
            while not keep_working.wait(0.3):
                for workspace in active:
                    runtime.activity(workspace)

        pinger = threading.Thread(target=users_working, daemon=True)
        pinger.start()
        wanted = sorted((set(OURS) | set(THEIRS)) - set(stopped))
        with ThreadPoolExecutor(max_workers=25) as pool:  # every workspace ready on a host that answers
            again = list(pool.map(lambda w: runtime.start(w, "u1", "tiny", wait=START_WAIT_S), wanted))
        assert all(s.phase is Phase.READY for s in again), [(s.workspace, s.phase, s.error) for s in again
                                                            if s.phase is not Phase.READY]
        if fault.leaves_copies and fault.name != "engine-restarted":
            assert not [s.workspace for s in again if s.host == TARGET]

        fault.heal(lab, TARGET)
        healer.clear()
        deadline = time.monotonic() + 60
        while runtime.fleet[TARGET].state is not HostState.UP and time.monotonic() < deadline:
            time.sleep(0.2)
        assert runtime.fleet[TARGET].state is HostState.UP
        time.sleep(1.5)  # a flush of the users' activity after the host is back
        report = runtime.reap()
        keep_working.set()
        pinger.join()
    copies = running_copies(lab)
    assert not [w for w in wanted if copies[w] != 1], {w: copies[w] for w in wanted if copies[w] != 1}
    assert not [w for w in stopped if copies[w]], (stopped, report)
    for workspace in active:  # their users kept working: still there, and the one the runtime serves
        status = runtime.status(workspace)
        assert status is not None and status.phase is Phase.READY, (workspace, status)
    assert watch.samples > 3
    assert all(peak <= CAPACITY for peak in watch.peaks.values()), watch.peaks
    for host in lab.fleet.host_names:
        assert lab.memory_reserved(host) <= CAPACITY
    print(f"[faults] {fault.name}: {len(struck)} struck, {len(report.removed)} removed by the reaper, "
          f"{time.monotonic() - began:.1f} s")
