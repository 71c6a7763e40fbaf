from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from drape_fleet.config import FleetConfig
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.placement import candidates
from drape_fleet.runtime.spec import container_spec, make_request
from drape_fleet.runtime.state import (
    Cordon,
    Foreign,
    HostView,
    PreviewRecord,
    inspect_problems,
    parse_container,
    parse_cordon,
)

GIB = 1024**3
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def entry(fleet: FleetConfig, workspace: str = "ws-1", state: str = "running", **changes: Any) -> dict[str, Any]:
    """A ``GET /containers/json`` entry as the engine returns it for a container built from our spec."""
    req = make_request(fleet.runtime, fleet.hosts, workspace=workspace, user="u-1", framework="vue")
    claim = "abcdefabcdef"
    spec = container_spec(req, fleet.runtime, claim=claim, created=NOW, network=L.network_name(claim),
                          publish_address="10.0.0.11", disk_limit=False)
    data: dict[str, Any] = {
        "Id": f"id-{workspace}", "Names": [f"/{spec.name}"], "State": state, "Labels": spec.labels,
        "HostConfig": {"NetworkMode": L.network_name(claim)},
        "Mounts": [{"Type": "bind", "Source": "/srv/drape/pnpm-store", "Destination": "/pnpm-store", "RW": False}],
        "Ports": [{"IP": "10.0.0.11", "PrivatePort": 3000, "PublicPort": 49153, "Type": "tcp"}],
    }
    data.update(changes)
    return data


def test_a_container_we_made_reads_back_completely(fleet: FleetConfig) -> None:
    record = parse_container("ax1", entry(fleet), fleet.runtime)
    assert isinstance(record, PreviewRecord)
    assert (record.workspace, record.user, record.project, record.framework) == ("ws-1", "u-1", "ws-1", "vue")
    assert record.created == NOW
    assert record.memory == 7 * GIB and record.cpus == 4 and record.port == 3000
    assert record.public_port == 49153
    assert record.serving and record.live and not record.tombstone


@pytest.mark.parametrize(("change", "reason"), [
    (lambda e: e["Labels"].pop(L.USER), "missing labels"),
    (lambda e: e["Labels"].update({L.WORKSPACE: "../x"}), "safe id"),
    (lambda e: e["Labels"].update({L.KIND: "db"}), "unknown kind"),
    (lambda e: e["Labels"].update({L.FRAMEWORK: "angular"}), "not configured"),
    (lambda e: e["Labels"].update({L.CREATED: "yesterday"}), "timestamp"),
    (lambda e: e["Labels"].update({L.MEMORY: "lots"}), "malformed"),
    (lambda e: e.update({"Names": ["/hand-made"]}), "does not match"),
    (lambda e: e.update({"HostConfig": {"NetworkMode": "host"}}), "network"),
    (lambda e: e["Mounts"].append({"Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock",
                                   "RW": True}), "docker.sock"),
])
def test_look_alikes_are_foreign_and_keep_their_memory(fleet: FleetConfig, change: Any, reason: str) -> None:
    data = entry(fleet)
    change(data)
    parsed = parse_container("ax1", data, fleet.runtime)
    assert isinstance(parsed, Foreign)
    assert reason in parsed.reason
    if reason not in ("malformed",):
        assert parsed.memory == 7 * GIB and parsed.live


def test_inspect_catches_what_listing_cannot(fleet: FleetConfig) -> None:
    record = parse_container("ax1", entry(fleet), fleet.runtime)
    assert isinstance(record, PreviewRecord)
    good = {"HostConfig": {"Privileged": False, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"],
                           "Memory": record.memory, "Binds": ["/srv/drape/pnpm-store:/pnpm-store:ro"]}}
    assert inspect_problems(good, record, fleet.runtime) == []
    bad = {"HostConfig": {"Privileged": True, "CapAdd": ["SYS_ADMIN"], "Memory": 1,
                          "Binds": ["/var/run/docker.sock:/var/run/docker.sock"], "PidMode": "host"}}
    problems = " | ".join(inspect_problems(bad, record, fleet.runtime))
    for word in ("privileged", "SYS_ADMIN", "not dropped", "no-new-privileges", "memory limit", "docker.sock",
                 "host namespace"):
        assert word in problems


def test_cordon_is_our_labelled_volume_only() -> None:
    ours = {"Name": L.CORDON_VOLUME, "Labels": {L.OWNER: "drape-fleet", L.KIND: L.KIND_CORDON,
                                                L.REASON: "reboot", L.CREATED: "2025-03-01T12:00:00.000Z"}}
    assert parse_cordon([ours], "drape-fleet") == Cordon("reboot", NOW)
    assert parse_cordon([{**ours, "Labels": {}}], "drape-fleet") is None
    assert parse_cordon([ours], "someone-else") is None


def view(name: str, used_gib: int, *, cordoned: bool = False, reachable: bool = True, foreign_gib: int = 0,
         capacity_gib: int = 120, claims_gib: int = 0) -> HostView:
    previews = tuple(
        PreviewRecord(host=name, id=f"{name}-{i}", name=f"drape-pv-w{i}", state="running", workspace=f"w{i}",
                      user="u", project="p", framework="vue", created=NOW, memory=GIB, cpus=0.25, port=3000,
                      claim="abcdefabcdef")
        for i in range(used_gib))
    previews += tuple(
        PreviewRecord(host=name, id=f"{name}-c{i}", name=f"drape-pv-c{i}", state="created", workspace=f"c{i}",
                      user="u", project="p", framework="vue", created=NOW, memory=GIB, cpus=0.25, port=3000,
                      claim="abcdefabcdef")
        for i in range(claims_gib))
    foreign = (Foreign(name, "container", "f", "f", "look-alike", memory=foreign_gib * GIB, live=True),) \
        if foreign_gib else ()
    return HostView(name=name, reachable=reachable, memory_capacity=capacity_gib * GIB, cpu_capacity=16,
                    cordon=Cordon("x", None) if cordoned else None, previews=previews, foreign=foreign)


def test_most_free_first_then_next() -> None:
    views = [view("ax1", 50), view("ax2", 10), view("ax3", 30)]
    assert candidates(views, 7 * GIB, 4, cpu_overcommit=5) == ["ax2", "ax3", "ax1"]


def test_full_cordoned_and_unreachable_hosts_are_skipped() -> None:
    views = [view("ax1", 115), view("ax2", 0, cordoned=True), view("ax3", 0, reachable=False),
             view("ax4", 100, foreign_gib=15), view("ax5", 100, claims_gib=14), view("ax6", 113)]
    assert candidates(views, 7 * GIB, 4, cpu_overcommit=5) == ["ax6"]


def test_pending_claims_and_exclusion_shift_the_order() -> None:
    views = [view("ax1", 10), view("ax2", 12)]
    assert candidates(views, GIB, 1, cpu_overcommit=5) == ["ax1", "ax2"]
    assert candidates(views, GIB, 1, cpu_overcommit=5, pending={"ax1": (5 * GIB, 5.0)}) == ["ax2", "ax1"]
    assert candidates(views, GIB, 1, cpu_overcommit=5, exclude=["ax1"]) == ["ax2"]


def test_cpu_counts_nominal_cores_against_overcommit() -> None:
    busy = HostView(name="ax1", reachable=True, memory_capacity=120 * GIB, cpu_capacity=16, previews=tuple(
        PreviewRecord(host="ax1", id=str(i), name=f"drape-pv-w{i}", state="running", workspace=f"w{i}", user="u",
                      project="p", framework="vue", created=NOW, memory=GIB, cpus=4, port=3000, claim="abcdefabcdef")
        for i in range(20)))
    assert candidates([busy], GIB, 4, cpu_overcommit=5) == []  # 80 nominal of 16 x 5
    assert candidates([busy], GIB, 4, cpu_overcommit=6) == ["ax1"]
