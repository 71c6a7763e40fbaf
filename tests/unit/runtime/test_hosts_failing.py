"""Issue 8, items 6, 8 and 9: a slow host is not an empty host, a slow operation is not a dead host, and a stop is
kept until the host that missed it answers again. Against fake engines that hang (packets dropped), refuse (dead),
or take their time (a big ``node_modules``)."""

from __future__ import annotations

import time

from runtime_testkit import World, back, down, eventually

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import HostState
from drape_fleet.runtime.readiness import Phase

SLOW = {"request_timeout_s": 0.4, "snapshot_timeout_s": 0.3, "probe_timeout_s": 0.3, "queue_timeout_s": 30}


def test_a_host_slower_than_the_look_up_is_not_taken_for_empty(world: World) -> None:
    """Item 6: ``start`` used to ignore the hosts that did not answer its look-up and place a second copy."""
    first = world.runtime(**SLOW)
    placed = first.start("slow-1", "u1", "tiny", wait=5)
    assert placed.host == "ax1"
    world.hosts["ax1"].delays["containers:slow-1"] = 1.0  # its engine is busy: listings take a second
    other = world.runtime(**SLOW)  # another backend process, which does not know where slow-1 runs
    status = other.start("slow-1", "u1", "tiny")
    assert status.phase is Phase.PLACING
    time.sleep(1.5)
    assert world.everywhere() == {"ax1": ["drape-pv-slow-1"], "ax2": [], "ax3": []}  # no second copy
    waiting = other.status("slow-1")
    assert waiting is not None and "did not answer" in (waiting.error or "")
    assert other.fleet["ax1"].state is not HostState.DOWN  # its health checks answer: slow, not dead
    del world.hosts["ax1"].delays["containers:slow-1"]
    taken = other.wait_ready("slow-1", 5)  # it answers again: the one copy is taken over
    assert taken.phase is Phase.READY and taken.container_id == placed.container_id


def test_a_black_holed_host_is_found_down_and_its_workspaces_placed_on_the_others(world: World) -> None:
    runtime = world.runtime(**SLOW)
    lost = runtime.start("bh-1", "u1", "tiny", wait=5)
    world.hosts[lost.host or ""].set_black_hole(True)  # packets dropped: every call hangs until its timeout
    started = time.monotonic()
    eventually(lambda: runtime.fleet[lost.host or ""].state is HostState.DOWN,  # noticed by the health pings
               tick=lambda: (world.clock.advance(1), runtime.fleet.check_due()))
    assert time.monotonic() - started < 5  # two failed health checks, not the calls' timeouts, decided it
    healthy = [runtime.start(f"bh-new-{i}", "u1", "tiny", wait=5) for i in range(3)]
    assert all(s.phase is Phase.READY and s.host != lost.host for s in healthy)
    again = runtime.start("bh-1", "u1", "tiny", wait=5)
    assert again.phase is Phase.READY and again.host != lost.host


def test_a_placement_that_keeps_colliding_gives_up_at_its_deadline(world: World) -> None:
    """Item 6: the placement loop checked its deadline only while queued, and could retry forever."""
    runtime = world.runtime(queue_timeout_s=30)
    world.claim_only("ax2", "stuck")  # a live copy elsewhere that never serves (a paused container)
    next(iter(world.hosts["ax2"].named("drape-pv-stuck"))).status = "paused"
    with world.ticking(seconds=2.0):
        status = runtime.start("stuck", "u1", "tiny", wait=10)
    assert status.phase is Phase.FAILED and "not placed within 30 s" in (status.error or "")
    assert "also on ax2" in (status.error or "")


def test_a_slow_removal_is_not_a_dead_host(world: World) -> None:
    """Item 8: removing a preview with a real project's node_modules outlasted the call timeout, and ``stop`` said
    "host unavailable" while the host was fine."""
    runtime = world.runtime(request_timeout_s=0.3, slow_call_timeout_s=5)
    status = runtime.start("big", "u1", "tiny", wait=5)
    host = world.hosts[status.host or ""]
    host.delays["remove_container"] = 1.0  # longer than any ordinary call may take
    result = runtime.stop_preview("big")
    assert result.removed and result.pending_hosts == ()
    assert runtime.fleet[host.name].state is HostState.UP
    eventually(lambda: world.owned(host.name) == [])
    host.delays["remove_container"] = 10.0  # longer even than the slow budget: the engine finishes it later
    runtime.start("bigger", "u1", "tiny", wait=5)
    assert runtime.stop("bigger") is True  # not an exception, not "unavailable"
    assert runtime.fleet[host.name].state is HostState.UP


def test_a_stop_while_the_host_is_down_is_applied_when_it_answers_again(world: World) -> None:
    """Item 9: a stop while a host was unreachable left that host's copy running when it came back."""
    ours = world.runtime()
    for workspace in ("gone-1", "gone-2", "kept"):
        ours.start(workspace, "u1", "tiny", wait=5)
    host = ours.status("gone-1").host or ""  # type: ignore[union-attr]
    assert {ours.status(w).host for w in ("gone-2", "kept")} != {host}  # type: ignore[union-attr]
    world.hosts["ax1"].down = world.hosts["ax2"].down = True
    down(ours, "ax1")
    down(ours, "ax2")
    result = ours.stop_preview("gone-1")
    assert not result.removed and result.pending_hosts == ("ax1", "ax2")
    markers = [v for v in world.hosts["ax3"].volume_table if v.startswith(L.STOP_MARKER_PREFIX + "gone-1-")]
    assert len(markers) == 1  # remembered on the host that answered, for any process
    ours.stop("gone-2")
    back(world, ours, "ax1")  # this process applies its stops as soon as the host answers
    eventually(lambda: "drape-pv-gone-1" not in world.owned("ax1"))
    restarted = world.runtime()  # a process that never saw the stop: the marker on ax3 tells it
    back(world, restarted, "ax2")
    restarted.reap()
    running = [n for names in world.everywhere().values() for n in names]
    assert "drape-pv-gone-1" not in running and "drape-pv-gone-2" not in running
    assert "drape-pv-kept" in running
    again = restarted.start("gone-1", "u1", "tiny", wait=5)  # a start after the stop is a new preview, untouched
    assert again.phase is Phase.READY
    restarted.reap()
    assert "drape-pv-gone-1" in [n for names in world.everywhere().values() for n in names]
    assert not [v for v in world.hosts["ax3"].volume_table if v.startswith(L.STOP_MARKER_PREFIX)]  # settled
