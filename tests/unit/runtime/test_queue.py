"""A full fleet: the bounded FIFO wait queue, its limit and timeout, and pre-warms that never queue."""

from __future__ import annotations

import pytest
from runtime_testkit import HALF, World, eventually, fill, queued

from drape_fleet.runtime.errors import QueueFull
from drape_fleet.runtime.readiness import Phase


def test_a_full_fleet_queues_first_come_first_served_and_places_on_release(world: World) -> None:
    runtime = world.runtime()
    fill(runtime)
    assert {name: len(names) for name, names in world.everywhere().items()} == {"ax1": 2, "ax2": 2, "ax3": 2}
    for i in range(3):
        runtime.start(f"wait-{i}", "u1", "tiny", resources=HALF)
        eventually(lambda i=i: queued(runtime, f"wait-{i}", i + 1))
    world.clock.advance(5)
    assert runtime.status("wait-0").waited_s == 5  # type: ignore[union-attr]
    freed = runtime.status("full-4")
    assert freed is not None and freed.host == "ax2"
    assert runtime.stop("full-4")
    first = runtime.wait_ready("wait-0", 5)
    assert first.phase is Phase.READY and first.host == "ax2"
    eventually(lambda: queued(runtime, "wait-1", 1) and queued(runtime, "wait-2", 2))
    assert world.owned("ax2") == ["drape-pv-full-1", "drape-pv-wait-0"]


def test_a_full_queue_refuses_at_once_and_a_prewarm_never_queues(world: World) -> None:
    runtime = world.runtime(queue_limit=1)
    fill(runtime)
    runtime.start("wait-0", "u1", "tiny", resources=HALF)
    eventually(lambda: queued(runtime, "wait-0", 1))
    with pytest.raises(QueueFull, match=r"1 previews are waiting \(limit 1\)"):
        runtime.start("wait-1", "u1", "tiny", resources=HALF)
    prewarm = runtime.project_opened("pre-0", "u1", "tiny", resources=HALF)
    assert prewarm.phase is Phase.PLACING  # accepted; it gives up rather than wait
    status = runtime.wait_ready("pre-0", 5)
    assert status.phase is Phase.FAILED and status.error == "not pre-warmed: every host is full (a start will queue)"
    assert queued(runtime, "wait-0", 1)  # the queue did not change


def test_a_start_joins_the_prewarm_under_way(world: World) -> None:
    runtime = world.runtime()
    for host in world.hosts.values():
        host.ready_on_start = False
    opened = runtime.project_opened("pre-1", "u1", "tiny")
    started = runtime.start("pre-1", "u1", "tiny")
    assert started.phase.active and opened.phase.active
    container = eventually(lambda: next(iter(world.hosts["ax1"].named("drape-pv-pre-1")), None))
    container.ready = True
    assert runtime.wait_ready("pre-1", 5).container_id == container.id
    assert [name for names in world.everywhere().values() for name in names] == ["drape-pv-pre-1"]


def test_a_queued_start_gives_up_after_the_queue_timeout(world: World) -> None:
    runtime = world.runtime(queue_timeout_s=30)
    fill(runtime)
    runtime.start("late", "u1", "tiny", resources=HALF)
    eventually(lambda: queued(runtime, "late", 1))
    world.clock.advance(31)
    status = runtime.wait_ready("late", 5)  # the head looks again within a second (QUEUE_POLL_S)
    assert status.phase is Phase.FAILED
    assert status.error == "no capacity on any host within 31 s (queue timeout 30 s)"
    assert status.queue_position is None


def test_capacity_freed_by_another_process_reaches_the_queue(world: World) -> None:
    ours, theirs = world.runtime(), world.runtime()
    fill(ours)
    ours.start("wait-x", "u1", "tiny", resources=HALF)
    eventually(lambda: queued(ours, "wait-x", 1))
    assert theirs.stop("full-0")  # another backend process frees ax1: nothing wakes ours, its poll finds it
    status = ours.wait_ready("wait-x", 5)
    assert status.phase is Phase.READY and status.host == "ax1"
