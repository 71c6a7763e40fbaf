"""What ``previews()`` and ``hosts()`` report: the engines' listings merged with this process's trackers."""

from __future__ import annotations

import copy

from runtime_testkit import MIB, World, down, eventually

from drape_fleet.runtime.readiness import Phase


def test_previews_lists_tracked_untracked_and_claimed_ones(world: World) -> None:
    ours, theirs = world.runtime(), world.runtime()
    mine = ours.start("r-mine", "u1", "tiny", project="p1", wait=5)
    other = theirs.start("r-theirs", "u2", "tiny", wait=5)
    world.hosts["ax3"].ready_on_start = False
    ours.start("r-slow", "u1", "tiny")
    eventually(lambda: world.hosts["ax3"].named("drape-pv-r-slow"))
    world.claim_only("ax1", "r-claim")
    listed = {s.workspace: s for s in ours.previews()}
    assert set(listed) == {"r-mine", "r-theirs", "r-slow", "r-claim"}
    assert (listed["r-mine"].phase, listed["r-mine"].project, listed["r-mine"].container_id) == \
        (Phase.READY, "p1", mine.container_id)
    assert listed["r-theirs"].phase is Phase.READY and listed["r-theirs"].user == "u2"  # probed: it answers
    assert listed["r-theirs"].url == other.url
    assert listed["r-slow"].phase is Phase.STARTING  # tracked here, on its way
    assert listed["r-claim"].phase is Phase.PLACING and listed["r-claim"].url is None
    unprobed = {s.workspace: s.phase for s in ours.previews(probe=False)}
    assert unprobed["r-theirs"] is Phase.STARTING  # not tracked, not asked: not claimed to be ready
    assert [s.host for s in ours.previews()] == sorted(s.host or "" for s in ours.previews())


def test_a_tracked_preview_on_a_dead_host_is_listed_as_lost(world: World) -> None:
    runtime = world.runtime()
    status = runtime.start("r-lost", "u1", "tiny", wait=5)
    world.hosts[status.host or ""].down = True
    down(runtime, status.host or "")
    listed = {s.workspace: s for s in runtime.previews()}
    assert listed["r-lost"].phase is Phase.LOST


def test_hosts_report_capacity_cordons_and_foreign_look_alikes(world: World) -> None:
    runtime = world.runtime()
    runtime.start("h-1", "u1", "tiny", wait=5)
    runtime.cordon("ax3", "disk swap")
    original = world.hosts["ax1"].container("drape-pv-h-1")
    forged = copy.deepcopy(original.body)
    forged["HostConfig"]["Privileged"] = True
    world.hosts["ax2"].create_network(name=forged["HostConfig"]["NetworkMode"], driver="bridge",
                                      ipam={"Config": [{"Subnet": "10.240.77.0/28"}]}, labels={})
    world.hosts["ax2"].create_container_from_config(forged, "drape-pv-h-1")
    world.hosts["ax2"].start("drape-pv-h-1")
    world.hosts["ax3"].down = True
    hosts = {h.name: h for h in runtime.hosts()}
    one, two, three = hosts["ax1"], hosts["ax2"], hosts["ax3"]
    assert (one.reachable, one.healthy, one.previews, one.claims, one.cordoned) == (True, True, 1, 0, False)
    assert (one.memory_capacity, one.memory_used, one.memory_free) == (1024 * MIB, 256 * MIB, 768 * MIB)
    assert one.cpu_capacity == 2 * 5.0 and one.cpus_used == 0.5  # nominal cores: 2 cores x overcommit 5
    assert one.server_version == "20.10.24+dfsg1" and one.disk_limit is False  # extfs: no size limit
    assert two.previews == 0 and [f.reason for f in two.foreign] == ["privileged"]
    assert two.memory_used == 256 * MIB  # a look-alike's reservation still counts
    assert not three.reachable and three.error and "connection refused" in three.error


def test_a_look_alike_is_never_served_nor_reaped(world: World) -> None:
    runtime = world.runtime()
    runtime.start("la", "u1", "tiny", wait=5)
    original = world.hosts["ax1"].container("drape-pv-la")
    forged = copy.deepcopy(original.body)
    forged["HostConfig"]["Binds"] = ["/:/host"]
    runtime.stop("la")
    world.hosts["ax2"].create_network(name=forged["HostConfig"]["NetworkMode"], driver="bridge",
                                      ipam={"Config": [{"Subnet": "10.240.78.0/28"}]}, labels={})
    world.hosts["ax2"].create_container_from_config(forged, "drape-pv-la")
    world.hosts["ax2"].start("drape-pv-la")
    assert runtime.status("la") is None
    world.clock.advance(24 * 3600)
    assert runtime.reap().removed == []
    assert world.owned("ax2") == ["drape-pv-la"]
    runtime.cordon("ax1")
    runtime.cordon("ax3")
    refused = runtime.start("la", "u1", "tiny", wait=10)  # only ax2 is open, and its name is taken there
    assert refused.phase is Phase.FAILED
    assert refused.error == "ax2: the name drape-pv-la is held by a foreign container (mounts '/' at '/host')"
    assert world.owned("ax2") == ["drape-pv-la"] and world.hosts["ax2"].count("remove_container") == 0
