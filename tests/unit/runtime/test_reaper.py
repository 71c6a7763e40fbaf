"""One reaper pass at a time, with the clock moved past each limit: what goes, what stays, and why."""

from __future__ import annotations

from runtime_testkit import HALF, World, eventually, fill, queued

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
    assert world.hosts["ax1"].network_table == {}
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
    assert report.networks_removed == 1
    assert world.hosts["ax2"].by_id == {} and world.hosts["ax2"].network_table == {}
    assert world.hosts["ax3"].network_table == {}


def test_a_tombstone_left_by_a_dead_reaper_goes_after_the_grace_period(world: World) -> None:
    runtime = world.runtime()
    status = runtime.start("tomb", "u1", "tiny", wait=5)
    container = world.hosts["ax1"].container(status.container_id or "")
    container.name = L.tombstone_name("tomb", container.labels[L.CLAIM])  # renamed, then its reaper died
    assert runtime.reap().removed == []  # first sighting: a reaper may be at work
    world.clock.advance(TOMBSTONE_GRACE_S + 1)
    report = runtime.reap()
    assert report.removed == [f"ax1/{container.name} (left over by a stopped reaper)"]
    assert world.owned("ax1") == []


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


def test_after_a_failover_the_newest_copy_is_kept(world: World) -> None:
    runtime = world.runtime()
    old = runtime.start("dup", "u1", "tiny", wait=5)
    world.hosts["ax1"].down = True  # ax1 vanishes; the next start places the workspace on ax2
    runtime.hosts()
    world.clock.advance(10)
    new = runtime.start("dup", "u1", "tiny", wait=5)
    assert new.host == "ax2" and new.phase is Phase.READY
    world.hosts["ax1"].down = False  # ax1 comes back with its old copy
    world.clock.advance(60)
    report = runtime.reap()
    assert report.removed == ["ax1/dup (duplicate after failover)"]
    assert world.everywhere() == {"ax1": [], "ax2": ["drape-pv-dup"], "ax3": []}
    assert old.container_id != new.container_id
