"""The Storage Box through the real hcloud library against the local fake of the Hetzner API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_storage_box import TOKEN, FakeStorageBoxApi

from drape_fleet.backup.storagebox import StorageBox, StorageBoxError
from drape_fleet.config.backup import TargetSnapshots

BOX = 123456


@pytest.fixture
def api() -> Iterator[FakeStorageBoxApi]:
    with FakeStorageBoxApi() as fake:
        fake.world.add_box(BOX, size=1_000_000, used=400_000)
        yield fake


def box(api: FakeStorageBoxApi, token: str = TOKEN, box_id: int = BOX) -> StorageBox:
    return StorageBox.connect(token, box_id, api_endpoint=api.url, poll_s=0.01, wait_s=5)


def test_status_reads_usage_plan_and_snapshots(api: FakeStorageBoxApi) -> None:
    status = box(api).status()
    assert (status.size_bytes, status.used_bytes, status.free_bytes) == (1_000_000, 400_000, 600_000)
    assert status.server == f"u{BOX}.your-storagebox.de" and status.plan is None and status.snapshots == ()


def test_a_snapshot_is_made_and_waited_for_where_the_api_documents_its_action(api: FakeStorageBoxApi) -> None:
    api.world.polls_until_done = 3
    made = box(api).snapshot("before restore drill")
    [snapshot] = box(api).status().snapshots
    assert snapshot.id == made and not snapshot.automatic
    polls = [path for method, path in api.world.requests if path.startswith("/v1/storage_boxes/actions/")]
    assert len(polls) == 3  # polled on the Hetzner API, not the Cloud API's /actions


def test_the_snapshot_plan_is_read_compared_and_set_once(api: FakeStorageBoxApi) -> None:
    wanted = TargetSnapshots(max_snapshots=7, hour=5, minute=30)
    said: list[str] = []
    assert box(api).ensure_plan(wanted, apply=False, log=said.append)  # dry run: would change
    assert api.world.boxes[BOX]["snapshot_plan"] is None
    assert box(api).ensure_plan(wanted, apply=True, log=said.append)
    assert box(api).status().plan == wanted
    assert not box(api).ensure_plan(wanted, apply=True, log=said.append)  # second run: no change
    assert said[-1].startswith("snapshot plan: no change")


@pytest.mark.parametrize(("token", "box_id", "expected"), [
    ("wrong-token", BOX, "unauthorized"),
    (TOKEN, 999, "check backup.target.storage_box_id"),
])
def test_errors_say_what_to_do(api: FakeStorageBoxApi, token: str, box_id: int, expected: str) -> None:
    with pytest.raises(StorageBoxError, match=expected):
        box(api, token, box_id).status()


def test_a_box_at_its_snapshot_limit_says_so(api: FakeStorageBoxApi) -> None:
    api.world.snapshot_limit = 0
    with pytest.raises(StorageBoxError, match="as many snapshots as it may"):
        box(api).snapshot("one too many")


def test_tokens_only_travel_over_https() -> None:
    with pytest.raises(ValueError, match="only travel over https"):
        StorageBox.connect(TOKEN, BOX, api_endpoint="http://api.example.com/v1")
