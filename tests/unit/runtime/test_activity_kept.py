"""Issue 8, item 7: activity is never lost toward deletion (the flush finds the container that holds the workspace
now; a stamp that cannot be read counts as activity), item 2: disk limits where the fleet requires them, and the
memory of a process does not grow with the ids callers pass."""

from __future__ import annotations

import pytest
from runtime_testkit import World, eventually

from drape_fleet.runtime.errors import BadRequest
from drape_fleet.runtime.readiness import Phase

PERSIST_S = 30 * 60.0


def test_the_flush_stamps_the_container_that_holds_the_workspace_now(world: World) -> None:
    """The flush used to stamp the container this process remembered: placed again by another process, the new one
    was never stamped and was reaped while its user worked."""
    ours, theirs = world.runtime(), world.runtime()
    first = ours.start("moved", "u1", "tiny", wait=5)
    theirs.stop("moved")
    world.clock.advance(5)
    again = theirs.start("moved", "u1", "tiny", wait=5)  # placed anew by the other process
    assert again.container_id != first.container_id
    world.clock.advance(PERSIST_S - 60)
    ours.activity("moved")  # the user's pings still arrive at this process
    assert ours.flush_activity() == 1
    world.clock.advance(120)  # 30 minutes after the new copy's creation, a minute after the ping
    assert theirs.reap().removed == []
    assert world.everywhere()[again.host or ""] == ["drape-pv-moved"]


def test_a_stamp_that_cannot_be_read_counts_as_activity(world: World) -> None:
    """A failed read (the engine answering 500) used to count as "never touched"."""
    runtime = world.runtime()
    status = runtime.start("unread", "u1", "tiny", wait=5)
    world.clock.advance(PERSIST_S + 60)
    world.hosts[status.host or ""].head_status = 500
    report = world.runtime().reap()
    assert report.removed == [] and "activity unknown" in report.errors[0]
    world.hosts[status.host or ""].head_status = 200
    assert world.runtime().reap().removed == [f"{status.host}/unread (idle)"]


def test_a_fleet_that_requires_disk_limits_places_only_where_they_hold(world: World) -> None:
    """Item 2: production had no disk limit on previews; a host that cannot enforce one must take none."""
    runtime = world.runtime(disk_limit="required", queue_timeout_s=5)
    hosts = {h.name: h for h in runtime.hosts()}
    assert not hosts["ax1"].placeable and "cannot limit a preview's disk" in (hosts["ax1"].unplaceable or "")
    runtime.start("nodisk", "u1", "tiny")
    # Queued first, then queued with the reason once a placement round has run: wait for the reason.
    waiting = eventually(lambda: (s := runtime.status("nodisk")) and s.phase is Phase.QUEUED
                         and "cannot limit a preview's disk" in (s.error or "") and s)
    assert waiting.host is None
    assert world.everywhere() == {"ax1": [], "ax2": [], "ax3": []}  # placed nowhere, not placed without a limit
    runtime.stop("nodisk")
    world.hosts["ax3"].backing_filesystem = "xfs"  # overlay2 on XFS with project quotas
    xfs = world.runtime(disk_limit="required")
    status = xfs.start("withdisk", "u1", "tiny", wait=5)
    assert status.phase is Phase.READY and status.host == "ax3"
    container = world.hosts["ax3"].container("drape-pv-withdisk")
    assert container.body["HostConfig"]["StorageOpt"] == {"size": "1G"}
    assert {h.name: h.placeable for h in xfs.hosts()} == {"ax1": False, "ax2": False, "ax3": True}


def test_ids_callers_pass_never_grow_a_process_memory(world: World) -> None:
    runtime = world.runtime()
    with pytest.raises(BadRequest, match="workspace"):
        runtime.activity("x" * 100_000)
    with pytest.raises(BadRequest, match="workspace"):
        runtime.status("../../etc/passwd")
    with pytest.raises(BadRequest, match="workspace"):
        runtime.stop("a b")
    for i in range(300):  # valid ids of previews that do not exist
        assert runtime.status(f"nobody-{i}") is None
        assert runtime.stop(f"nobody-{i}") is False
    assert len(runtime._workspace_locks) == 0  # a lock exists only while it is held
    assert runtime._trackers.all() == []
    dirty, seen, written = runtime._activity.sizes()
    assert dirty == seen == written == 0


def test_pings_buffered_for_a_host_that_did_not_answer_are_kept_for_the_next_flush(world: World) -> None:
    runtime = world.runtime(snapshot_timeout_s=0.2)
    status = runtime.start("later", "u1", "tiny", wait=5)
    world.hosts[status.host or ""].delays["containers"] = 0.5  # slower than the flush's listing may take
    runtime.activity("later")
    assert runtime.flush_activity() == 0
    del world.hosts[status.host or ""].delays["containers"]
    eventually(lambda: runtime.flush_activity() == 1)
