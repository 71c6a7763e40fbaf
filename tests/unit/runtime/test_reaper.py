"""One reaper pass at a time, with the clock moved past each limit: what goes, what stays, and why."""

from __future__ import annotations

from runtime_testkit import HALF, World, back, down, eventually, fill, queued

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.lifecycle import TOMBSTONE_GRACE_S
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.tracking import FAILED_KEPT_S

PERSIST_S = 30 * 60.0


def test_idle_previews_go_after_the_persistence_window_and_active_ones_stay(world: World) -> None:
    runtime = world.runtime()
    for workspace in ("idle", "active", "pinged"):
        runtime.start(workspace, "u1", "tiny", wait=5)
    world.clock.advance(PERSIST_S - 60)
    runtime.start("active", "u1", "tiny")  # a hot start stamps the container
    runtime.activity("pinged")  # a ping not flushed yet still counts, in this process
    assert runtime.reap().removed == []  # nothing is idle for 30 minutes yet
    world.clock.advance(120)
    report = runtime.reap()
    assert report.removed == ["ax1/idle (idle)"] and report.errors == []
    assert world.everywhere() == {"ax1": [], "ax2": ["drape-pv-active"], "ax3": ["drape-pv-pinged"]}
    assert world.networks("ax1")[0] == 0
    assert runtime.status("idle") is None


def test_another_process_reaper_sees_the_stamp_of_a_hot_start(world: World) -> None:
    ours, reaper = world.runtime(), world.runtime()
    ours.start("hot", "u1", "tiny", wait=5)
    world.clock.advance(PERSIST_S - 10)
    ours.start("hot", "u1", "tiny")
    world.clock.advance(20)  # 30 min after creation, 10 s after the hot start
    assert reaper.reap().removed == []
    world.clock.advance(PERSIST_S)
    assert reaper.reap().removed == ["ax1/hot (idle)"]


def test_a_freed_preview_lets_the_queue_in(world: World) -> None:
    runtime = world.runtime()
    fill(runtime)
    world.clock.advance(PERSIST_S + 1)
    for workspace in ("full-1", "full-2", "full-3", "full-4", "full-5"):
        runtime.activity(workspace)
    runtime.flush_activity()
    runtime.start("waiting", "u1", "tiny", resources=HALF)
    eventually(lambda: queued(runtime, "waiting", 1))
    assert runtime.reap().removed == ["ax1/full-0 (idle)"]
    status = runtime.wait_ready("waiting", 5)
    assert status.phase is Phase.READY and status.host == "ax1"


def test_abandoned_claims_and_orphan_networks_go_after_the_claim_timeout(world: World) -> None:
    runtime = world.runtime()
    world.claim_only("ax2", "crashed")
    world.hosts["ax3"].create_network(name="drape-net-gone-0123456789ab", driver="bridge",
                                      ipam={"Config": [{"Subnet": "10.240.9.0/28"}]},
                                      labels={L.OWNER: "drape-fleet", L.KIND: L.KIND_NETWORK, L.CLAIM: "0123456789ab"})
    hosts = {h.name: h for h in runtime.hosts()}
    assert hosts["ax2"].claims == 1 and hosts["ax2"].memory_used == 256 * 1024 * 1024  # a claim counts
    assert runtime.reap().removed == []
    world.clock.advance(121)  # claim_timeout_s is 120
    report = runtime.reap()
    assert report.removed == ["ax2/drape-pv-crashed (abandoned claim)"]
    assert report.networks_removed >= 1  # the orphan (and spare holders made beyond the count, if any)
    assert world.owned("ax2") == []
    assert "drape-net-gone-0123456789ab" not in world.hosts["ax3"].network_table
    for host in ("ax2", "ax3"):  # what is left are spares, ready for the next claims
        used, spare = world.networks(host)
        assert used == 0 and spare <= 2


def test_a_tombstone_left_by_a_dead_reaper_is_settled_by_its_activity(world: World) -> None:
    runtime = world.runtime()
    for workspace in ("tomb-active", "tomb-idle"):
        runtime.start(workspace, "u1", "tiny", wait=5)
    world.clock.advance(PERSIST_S + 60)
    runtime.activity("tomb-active")
    runtime.flush_activity()  # stamped: its user is here
    for workspace in ("tomb-active", "tomb-idle"):  # renamed by a reaper that died before re-reading the stamp
        container = next(c for h in world.hosts.values() for c in h.named(f"drape-pv-{workspace}"))
        container.name = L.tombstone_name(workspace, container.labels[L.CLAIM])
    other = world.runtime()  # another process: it has no pings of its own, only the stamps
    assert other.reap().removed == []  # first sighting: a reaper may be at work
    world.clock.advance(TOMBSTONE_GRACE_S + 1)
    report = other.reap()
    assert len(report.removed) == 1 and report.removed[0].startswith("ax2/drape-reap-tomb-idle-")
    assert report.removed[0].endswith("(left over by a stopped reaper)")
    assert any("tomb-active (a dead reaper's tombstone, active: renamed back)" in k for k in report.kept)
    assert world.everywhere() == {"ax1": ["drape-pv-tomb-active"], "ax2": [], "ax3": []}


def test_a_failed_preview_is_kept_a_minute_for_its_logs(world: World) -> None:
    runtime = world.runtime()
    world.hosts["ax1"].ready_on_start = False
    runtime.start("broken", "u1", "tiny")
    container = eventually(lambda: next(iter(world.hosts["ax1"].named("drape-pv-broken")), None))
    container.stop(1)
    assert runtime.wait_ready("broken", 5).phase is Phase.FAILED
    assert runtime.reap().removed == []
    world.clock.advance(FAILED_KEPT_S + 1)
    assert runtime.reap().removed == ["ax1/drape-pv-broken (exited)"]


def test_another_process_keeps_a_preview_that_just_failed_until_its_starter_has_read_why(world: World) -> None:
    """Seen on the lab: a host's own service reaped a preview that failed at once, before the process that started
    it had looked; that process reported "the container was removed while starting" instead of the reason."""
    starter, other = world.runtime(), world.runtime()
    world.hosts["ax1"].ready_on_start = False
    starter.start("fails-at-once", "u1", "tiny")
    container = eventually(lambda: next(iter(world.hosts["ax1"].named("drape-pv-fails-at-once")), None))
    container.set_phase("failed: pnpm install exited with 1")
    container.stop(1)
    assert other.reap().removed == []  # the other process does not track it: kept by when it exited
    failed = starter.wait_ready("fails-at-once", 5)
    assert failed.phase is Phase.FAILED and failed.error == "pnpm install exited with 1"
    world.clock.advance(FAILED_KEPT_S + 1)
    assert other.reap().removed == ["ax1/drape-pv-fails-at-once (exited)"]


def test_after_a_failover_the_newest_copy_is_kept(world: World) -> None:
    runtime = world.runtime()
    old = runtime.start("dup", "u1", "tiny", wait=5)
    world.hosts["ax1"].down = True  # ax1 vanishes; the next start places the workspace on ax2
    down(runtime, "ax1")
    world.clock.advance(10)
    new = runtime.start("dup", "u1", "tiny", wait=5)
    assert new.host == "ax2" and new.phase is Phase.READY
    back(world, runtime, "ax1")  # ax1 comes back with its old copy
    report = runtime.reap()
    assert report.removed == ["ax1/dup (duplicate after failover)"]
    assert world.everywhere() == {"ax1": [], "ax2": ["drape-pv-dup"], "ax3": []}
    assert old.container_id != new.container_id


def test_the_older_copy_stays_until_the_newest_is_ready(world: World) -> None:
    """Issue 8, item 5: once a replacement runs, a reaper sees two copies; it must not remove the live older one
    before the replacement answers (it used to remove it at once, whatever the replacement's state)."""
    runtime = world.runtime()
    runtime.start("twice", "u1", "tiny", wait=5)
    world.hosts["ax2"].ready_on_start = False
    world.clock.advance(5)
    replacement = world.claim_only("ax2", "twice", claim="abcdefabcdef")
    world.hosts["ax2"].start(replacement)  # a replacement that is still installing
    report = runtime.reap()
    assert report.removed == [] and any("older copy kept" in k for k in report.kept)
    assert world.everywhere() == {"ax1": ["drape-pv-twice"], "ax2": ["drape-pv-twice"], "ax3": []}
    world.hosts["ax2"].container(replacement).ready = True
    assert runtime.reap().removed == ["ax1/twice (duplicate after failover)"]
    assert world.everywhere() == {"ax1": [], "ax2": ["drape-pv-twice"], "ax3": []}
