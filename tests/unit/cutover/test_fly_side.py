"""The Fly side against the Machines API fake (in process): the preview machines and their states, the write
check, stopping (recorded before each stop), waiting out a lease an interrupted run left, starting again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.fly_machines import FakeFly
from fakes.fly_state import Grant
from fleets import fleet_data
from pydantic import SecretStr

from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.secrets import Secrets
from drape_fleet.cutover.context import CutoverContext, CutoverRefused
from drape_fleet.cutover.fly_side import check_write_access, inventory, require_settled, start_again, stop_serving
from drape_fleet.cutover.progress import FlyMachineRecord
from drape_fleet.environments import Environment, FleetTarget
from drape_fleet.fly import FlyPermissionError

APP = "drape-previews"
PREVIEW = {"drape_role": "preview"}


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    with FakeFly({"rw": Grant(), "ro": Grant(write=False)}, transition_s=0.05) as fake:
        fake.world.add_app(APP)
        yield fake


def _ctx(fly: FakeFly, tmp: Path, token: str = "rw") -> tuple[CutoverContext, list[str]]:  # noqa: S107
    fleet = validate_fleet(fleet_data(fly={"apps": [APP], "api_url": fly.url, "preview_metadata": PREVIEW,
                                           "lease_ttl_s": 10}), source="fleet.toml")
    env = Environment(name="production", fleet_file=tmp / "fleet.toml", state_dir=tmp, pki_dir=tmp / "pki",
                      known_hosts=tmp / "known_hosts", ssh_key=tmp / "key", ssh_user=None)
    said: list[str] = []
    return CutoverContext(FleetTarget(env, fleet), Secrets(fly_api_token=SecretStr(token)), said.append), said


def test_machines_in_states_the_cutover_cannot_act_on_stop_the_plan(fly: FakeFly, tmp_path: Path) -> None:
    fly.world.add_machine(APP, state="started", metadata=PREVIEW)
    failed = fly.world.add_machine(APP, state="failed", name="preview-bad", metadata=PREVIEW)
    fly.world.add_machine(APP, state="replacing", name="preview-busy", metadata=PREVIEW)
    fly.world.add_machine(APP, state="failed", name="the-backend")  # not a preview machine: not ours to judge
    ctx, _ = _ctx(fly, tmp_path)
    found = inventory(ctx)
    assert found.by_state() == {"failed": 1, "replacing": 1, "started": 1}
    with pytest.raises(CutoverRefused) as refused:
        require_settled(found)
    text = str(refused.value)
    assert "2 Fly preview machine(s) are in states the cutover does not act on" in text
    assert f"drape-previews/{failed.id} (preview-bad, failed, cdg): it failed: look at it (`fly machine status " \
           f"{failed.id} -a drape-previews`)" in text
    assert "(preview-busy, replacing, cdg): a deploy or update is replacing it: wait until it settles" in text
    assert "Nothing was changed" in text
    ctx.close()


def test_a_token_that_may_only_read_is_found_out_before_anything_changes(fly: FakeFly, tmp_path: Path) -> None:
    fly.world.add_machine(APP, state="started", metadata=PREVIEW)
    ctx, _ = _ctx(fly, tmp_path, token="ro")
    found = inventory(ctx)
    with pytest.raises(FlyPermissionError, match=r"answered 403: unauthorized.*lacks permissions for this app"):
        check_write_access(ctx, found)
    assert [m["state"] for m in fly.world.list_machines(APP, {})] == ["started"]
    ctx.close()


def test_serving_machines_are_stopped_each_recorded_first_and_started_again(fly: FakeFly, tmp_path: Path) -> None:
    for state in ("started", "started", "suspended", "stopped"):
        fly.world.add_machine(APP, state=state, metadata=PREVIEW)
    ctx, _ = _ctx(fly, tmp_path)
    records: list[FlyMachineRecord] = []

    def record(item: FlyMachineRecord) -> None:
        assert fly.world.get(APP, item.id)["state"] == item.state_before  # recorded before the stop is sent
        records.append(item)

    assert stop_serving(ctx, inventory(ctx), record) == []
    assert sorted(r.state_before for r in records) == ["started", "started", "suspended"]
    assert [m["state"] for m in fly.world.list_machines(APP, {})] == ["stopped"] * 4
    fly.world.start(APP, records[0].id, None)  # someone started one again meanwhile
    started, failures = start_again(ctx, tuple(records))
    assert failures == [] and len(started) == 2
    assert sorted(m["state"] for m in fly.world.list_machines(APP, {})) == ["started"] * 3 + ["stopped"]
    ctx.close()


def test_a_lease_an_interrupted_run_left_is_waited_out(fly: FakeFly, tmp_path: Path) -> None:
    ours = fly.world.add_machine(APP, state="started", metadata=PREVIEW)
    theirs = fly.world.add_machine(APP, state="started", metadata=PREVIEW)
    ctx, said = _ctx(fly, tmp_path)
    ctx.fly.machines.acquire_lease(APP, ours.id, ttl_s=2, description="drape cutover phase 4: stop")
    ctx.fly.machines.acquire_lease(APP, theirs.id, ttl_s=60, description="deploy in progress")
    failures = stop_serving(ctx, inventory(ctx), lambda item: None)
    assert any("still carries the lease of an interrupted cutover run" in line for line in said)
    assert fly.world.get(APP, ours.id)["state"] == "stopped"
    assert len(failures) == 1 and theirs.id in failures[0] and "lease currently held" in failures[0]
    assert fly.world.get(APP, theirs.id)["state"] == "started"
    ctx.close()
