"""The router: answers from the newest policy in the store, picks up a change on its next read (and repairs a
host that missed it), records fallbacks, keeps a workspace whose preview runs on Hetzner there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from volume_engines import OWNER, VolumeFleet

from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.router import Router
from drape_fleet.routing.store import StateStore


@pytest.fixture
def router(volumes: VolumeFleet) -> Iterator[Router]:
    made = Router(volumes.fleet, OWNER, background=False, running_on={"ws-kept": "ax2"}.get)
    yield made
    made.close()


def test_no_state_yet_means_everyone_on_fly(router: Router) -> None:
    route = router.route("u-1")
    assert (route.provider, route.phase, route.generation) == ("fly", 0, 0)


def test_a_new_policy_is_taken_on_the_next_read(router: Router, store: StateStore, volumes: VolumeFleet) -> None:
    store.write(RoutingPolicy(phase=2, internal_users=("u-ops",)), {}, expected=0, writer="ops")
    assert router.route("u-ops").provider == "fly"  # not read yet
    volumes.apis["ax3"].down = True  # a host down does not keep the change from anyone
    router.refresh()
    assert router.route("u-ops").provider == "hetzner" and router.generation == 1
    assert not router.stale


def test_a_host_that_missed_a_change_is_brought_up_to_date_by_a_reader(
        router: Router, store: StateStore, volumes: VolumeFleet) -> None:
    volumes.apis["ax3"].down = True
    store.write(RoutingPolicy(phase=3, percent=50, salt="s"), {}, expected=0, writer="ops")
    volumes.apis["ax3"].down = False
    assert volumes.names("ax3") == []
    router.refresh()
    assert volumes.names("ax3") == ["drape-cutover-state-000000001"] and router.policy.percent == 50


def test_a_failed_placement_falls_back_to_fly_in_phase_3_only(router: Router, store: StateStore) -> None:
    store.write(RoutingPolicy(phase=3, internal_users=("u-ops",)), {}, expected=0, writer="ops")
    router.refresh()
    route = router.placement_failed("u-ops", reason="queue full")
    assert route.provider == "fly" and "fell back to Fly" in route.reason
    store.write(RoutingPolicy(phase=4), {}, expected=1, writer="ops")
    router.refresh()
    route = router.placement_failed("u-ops", reason="host down", kind="warm")
    assert route.provider == "hetzner" and "no Fly fallback" in route.reason
    metrics = router.metrics()
    assert metrics.fallbacks == {3: 1}
    assert metrics.select(phase=3, provider="hetzner").failures == {"queue full": 1}
    assert metrics.select(phase=4, provider="hetzner", kind="warm").failures == {"host down": 1}


def test_a_running_hetzner_preview_keeps_its_workspace_there(router: Router, store: StateStore) -> None:
    store.write(RoutingPolicy(phase=3, percent=0), {}, expected=0, writer="ops")
    router.refresh()
    assert router.route("u-7", "ws-other").provider == "fly"
    kept = router.route("u-7", "ws-kept")
    assert kept.provider == "hetzner" and "still runs on ax2" in kept.reason


def test_starts_are_recorded_under_the_phase_in_force(router: Router, store: StateStore) -> None:
    store.write(RoutingPolicy(phase=3), {}, expected=0, writer="ops")
    router.refresh()
    router.record_start("fly", "cold", 210.0)
    router.record_start("hetzner", "hot", 0.2, phase=5)
    metrics = router.metrics()
    assert metrics.select(phase=3, provider="fly").ok == 1 and metrics.select(phase=5).ok == 1
