"""Cordon, uncordon and drain through the facade, against fake engines (``runtime_testkit``)."""

from __future__ import annotations

import pytest
from fake_docker import foreign_cordon
from runtime_testkit import World

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.errors import EngineError
from drape_fleet.runtime.readiness import Phase


def test_a_cordoned_host_takes_no_new_preview_until_uncordoned(world: World) -> None:
    runtime = world.runtime()
    runtime.cordon("ax1", "kernel update")
    hosts = {h.name: h for h in runtime.hosts()}
    assert hosts["ax1"].cordoned and hosts["ax1"].cordon_reason == "kernel update"
    assert world.hosts["ax1"].volume_table[L.CORDON_VOLUME]["Labels"][L.OWNER] == "drape-fleet"
    assert runtime.start("c-1", "u1", "tiny", wait=5).host == "ax2"  # ax1 would win the tie by name
    runtime.uncordon("ax1")
    assert L.CORDON_VOLUME not in world.hosts["ax1"].volume_table
    assert runtime.start("c-2", "u1", "tiny", wait=5).host == "ax1"


def test_uncordon_leaves_a_volume_it_did_not_make(world: World) -> None:
    foreign_cordon(world.hosts["ax2"])
    runtime = world.runtime()
    with pytest.raises(EngineError, match="was not made by this runtime; not removing it"):
        runtime.uncordon("ax2")
    assert world.hosts["ax2"].volume_table[L.CORDON_VOLUME]["Labels"] == {"made-by": "someone"}
    assert world.hosts["ax2"].count("remove_volume") == 0


def test_cordon_refuses_a_volume_it_did_not_make(world: World) -> None:
    foreign_cordon(world.hosts["ax2"])
    with pytest.raises(EngineError, match="not made by this runtime: remove it by hand"):
        world.runtime().cordon("ax2")
    assert not {h.name: h for h in world.runtime().hosts()}["ax2"].cordoned  # not taken for ours either


def test_drain_stops_idle_previews_and_moves_busy_ones_then_stays_cordoned(world: World) -> None:
    runtime = world.runtime()
    runtime.cordon("ax2")
    runtime.cordon("ax3")
    idle = runtime.start("d-idle", "u1", "tiny", wait=5)
    busy = runtime.start("d-busy", "u1", "tiny", wait=5)
    assert idle.host == busy.host == "ax1"
    runtime.uncordon("ax2")
    runtime.uncordon("ax3")
    world.clock.advance(600)  # both are 10 minutes old; only d-busy's user is still here
    runtime.activity("d-busy")
    assert runtime.flush_activity() == 1
    progress: list[str] = []
    report = runtime.drain("ax1", idle_s=300, deadline_s=0, poll_s=0.01, progress=progress.append)
    assert report.done and report.stopped == ["d-idle"]
    assert report.moved == ["d-busy -> ax2"] and report.failed == []
    moved = runtime.status("d-busy")
    assert moved is not None and moved.phase is Phase.READY and moved.host == "ax2"
    assert moved.container_id != busy.container_id
    assert world.everywhere() == {"ax1": [], "ax2": ["drape-pv-d-busy"], "ax3": []}
    assert progress[0] == "ax1 cordoned: no new previews will be placed there"
    assert {h.name: h for h in runtime.hosts()}["ax1"].cordoned


def test_drain_reports_what_it_could_not_move(world: World) -> None:
    runtime = world.runtime(queue_timeout_s=1)
    runtime.cordon("ax2")
    runtime.cordon("ax3")
    assert runtime.start("d-stuck", "u1", "tiny", wait=5).host == "ax1"
    runtime.activity("d-stuck")
    runtime.flush_activity()
    with world.ticking():  # nowhere to go (every other host cordoned): the move waits out its queue timeout
        report = runtime.drain("ax1", idle_s=300, deadline_s=0, poll_s=0.01)
    assert not report.done and report.remaining == 1
    assert report.failed and report.failed[0].startswith("d-stuck: ")
    assert world.owned("ax1") == ["drape-pv-d-stuck"]  # the original is left running, and said to be
    status = runtime.status("d-stuck")
    assert status is not None and status.phase is Phase.READY and status.host == "ax1"
