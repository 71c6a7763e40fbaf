"""The state store on every host's engine: newest wins, majority writes, conflicts, hosts catching up, damage."""

from __future__ import annotations

import pytest
from volume_engines import OWNER, VolumeFleet

from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.records import DIGEST, RecordError, StateRecord, pack, parse_state, unpack
from drape_fleet.routing.store import StateStore, StoreConflict, StoreError
from drape_fleet.runtime.clock import SYSTEM_CLOCK


def test_an_empty_store_reads_as_generation_zero(store: StateStore) -> None:
    view = store.read()
    assert view.newest is None and view.generation == 0 and view.quorum and view.behind == []


def test_a_write_lands_on_every_host_and_reads_back(store: StateStore, volumes: VolumeFleet) -> None:
    record = store.write(RoutingPolicy(phase=2, internal_users=("u-ops",), salt="s"), {"phase": 2}, expected=0,
                         writer="ops@laptop")
    assert record.generation == 1
    assert all(volumes.names(h) == ["drape-cutover-state-000000001"] for h in ("ax1", "ax2", "ax3"))
    view = store.read()
    assert view.newest is not None and view.newest.policy.internal_users == ("u-ops",)
    assert view.newest.progress == {"phase": 2} and view.newest.writer == "ops@laptop"
    assert view.host_generations() == {"ax1": 1, "ax2": 1, "ax3": 1}


def test_a_write_planned_from_an_old_generation_is_refused(store: StateStore) -> None:
    store.write(RoutingPolicy(phase=1), {}, expected=0, writer="a")
    with pytest.raises(StoreConflict, match="moved from generation 0 to 1"):
        store.write(RoutingPolicy(phase=2), {}, expected=0, writer="b")


def test_two_writers_of_one_generation_find_out(store: StateStore, volumes: VolumeFleet) -> None:
    other = StateRecord.make(1, RoutingPolicy(phase=3), {}, writer="other", created=SYSTEM_CLOCK.now())
    # Between our read and our create, another cutover task creates generation 1 on ax2.
    volumes.apis["ax2"].before_create = lambda name: volumes.apis["ax2"].create_volume(other.volume,
                                                                                        other.labels(OWNER))
    with pytest.raises(StoreConflict, match="ax2 already holds a different generation 1"):
        store.write(RoutingPolicy(phase=2), {}, expected=0, writer="me")
    assert volumes.names("ax1") == volumes.names("ax3") == []  # ours taken back
    assert [r.writer for r in store.read().copies["ax2"].records] == ["other"]


def test_without_a_majority_nothing_is_written(store: StateStore, volumes: VolumeFleet) -> None:
    volumes.apis["ax2"].down = volumes.apis["ax3"].down = True
    with pytest.raises(StoreError, match="only 1 of 3 hosts answered"):
        store.write(RoutingPolicy(phase=1), {}, expected=0, writer="me")
    assert volumes.names("ax1") == []


def test_a_host_down_during_a_write_catches_up_when_it_returns(store: StateStore, volumes: VolumeFleet) -> None:
    store.write(RoutingPolicy(phase=1), {}, expected=0, writer="me")
    volumes.apis["ax3"].down = True
    store.write(RoutingPolicy(phase=2), {}, expected=1, writer="me")
    view = store.read()
    assert view.generation == 2 and view.unreachable.keys() == {"ax3"} and view.quorum
    volumes.apis["ax3"].down = False
    view = store.read()
    assert view.behind == ["ax3"]
    assert store.repair(view) == ["ax3"]
    assert store.read().host_generations() == {"ax1": 2, "ax2": 2, "ax3": 2}


def test_a_lost_race_is_settled_by_the_copy_more_hosts_hold(store: StateStore, volumes: VolumeFleet) -> None:
    winner = StateRecord.make(4, RoutingPolicy(phase=3, percent=10), {}, writer="w", created=SYSTEM_CLOCK.now())
    loser = StateRecord.make(4, RoutingPolicy(phase=3, percent=90), {}, writer="l", created=SYSTEM_CLOCK.now())
    for host, record in (("ax1", winner), ("ax2", winner), ("ax3", loser)):
        volumes.apis[host].create_volume(record.volume, record.labels(OWNER))
    view = store.read()
    assert view.newest is not None and view.newest.writer == "w" and view.divergent and view.behind == ["ax3"]
    store.repair(view)
    after = store.read()
    assert not after.divergent and after.host_generations() == {"ax1": 4, "ax2": 4, "ax3": 4}


def test_old_generations_are_pruned_to_the_last_five(store: StateStore, volumes: VolumeFleet) -> None:
    for generation in range(8):
        store.write(RoutingPolicy(phase=1, percent=generation), {}, expected=generation, writer="me")
    assert [int(n[-9:]) for n in volumes.names("ax1")] == [4, 5, 6, 7, 8]


def test_a_damaged_record_is_reported_and_never_used(store: StateStore, volumes: VolumeFleet) -> None:
    store.write(RoutingPolicy(phase=2), {}, expected=0, writer="me")
    volume = volumes.apis["ax1"].table["drape-cutover-state-000000001"]
    volume["Labels"] = {**volume["Labels"], DIGEST: "0" * 32}
    view = store.read()
    assert view.copies["ax1"].damaged and "digest does not match" in view.copies["ax1"].damaged[0]
    assert view.newest is not None and view.behind == ["ax1"]
    with pytest.raises(RecordError, match="digest does not match"):
        parse_state(volume, OWNER)


def test_a_state_too_large_for_labels_is_refused_before_any_host(store: StateStore, volumes: VolumeFleet) -> None:
    huge = RoutingPolicy(phase=3, allowlist=tuple(f"user-{n:06d}" for n in range(12000)))
    with pytest.raises(RecordError, match=r"KiB of labels .* route by percentage"):
        store.write(huge, {}, expected=0, writer="me")
    assert all(api.creates == 0 for api in volumes.apis.values())


def test_packing_round_trips_and_refuses_garbage() -> None:
    data = {"phase": 3, "events": [{"text": "é"}] * 3}
    assert unpack(pack(data)) == data
    with pytest.raises(RecordError, match="does not decode"):
        unpack("not base64 at all!")


def test_an_export_restores_onto_hosts_that_lost_everything(store: StateStore, volumes: VolumeFleet) -> None:
    store.write(RoutingPolicy(phase=3, percent=20, salt="s"), {"phase": 3}, expected=0, writer="ops")
    exported = store.export()
    assert exported is not None and exported["generation"] == 1
    assert store.wipe() == 3 and store.export() is None  # every host reinstalled
    restored = store.restore(exported, writer="backup")
    assert restored.generation == 1 and restored.policy.percent == 20 and restored.progress == {"phase": 3}
    assert "restored generation 1" in restored.writer
    with pytest.raises(StoreError, match="not an exported cutover state"):
        store.restore({"policy": {"phase": 9}}, writer="x")


def test_a_hosts_own_volume_listing_restores_too(store: StateStore, volumes: VolumeFleet) -> None:
    store.write(RoutingPolicy(phase=2, internal_users=("u-ops",)), {"phase": 2}, expected=0, writer="ops")
    store.write(RoutingPolicy(phase=3, percent=5), {"phase": 3}, expected=1, writer="ops")
    inspected = [dict(v) for v in volumes.apis["ax2"].table.values()]  # what EXPORT_ARGV prints on ax2
    store.wipe()
    restored = store.restore(inspected, writer="backup")
    assert (restored.generation, restored.policy.percent, restored.progress) == (1, 5, {"phase": 3})
    with pytest.raises(StoreError, match="holds no readable state of ours"):
        store.restore([{"Name": "other", "Labels": {}}], writer="backup")
