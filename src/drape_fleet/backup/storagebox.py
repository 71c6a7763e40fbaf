"""The Hetzner Storage Box behind the backups, through ``hcloud`` (2.27: ``client.storage_boxes``).

What ops ask of it: how full it is (a full box fails backups), its own snapshots (copies of the whole box that a
compromised host cannot delete: they take the API token, which hosts never hold), a snapshot on demand before
risky work, and the snapshot plan from the fleet file (``backup.target_snapshots``), read-compare-act.

Storage Boxes live on the Hetzner API (``api.hetzner.com``), not the Cloud API; hcloud has an endpoint for each.
Actions are polled where the Storage Box API documents them (``/storage_boxes/actions/{id}``). The token is the
secret ``hcloud_token`` of the Console project holding the box. ``api_endpoint`` exists for the local fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from hcloud import APIException, Client
from hcloud.storage_boxes import StorageBoxSnapshotPlan

from drape_fleet.config.backup import HETZNER_API_URL, TargetSnapshots
from drape_fleet.endpoints import require_secure_endpoint

_TOKEN_FIX = ("create a Read & Write API token in the Hetzner Console project that holds the Storage Box "  # noqa: S105
              "(Security → API tokens) and set DRAPE_HCLOUD_TOKEN, or hcloud_token in "
              "~/.config/drape-fleet/secrets.toml")
_FIXES = {
    "unauthorized": f"the token was rejected: {_TOKEN_FIX}",
    "forbidden": f"the token may not manage this Storage Box: {_TOKEN_FIX}",
    "token_readonly": f"the token is read-only: {_TOKEN_FIX}",
    "not_found": "no Storage Box with this id in the token's project: check backup.target.storage_box_id "
                 "(Console → Storage Boxes) and the token's project",
    "locked": "another change to the box is running: wait a minute and run again",
    "rate_limit_exceeded": "the API's rate limit is still exhausted after hcloud's retries: wait and run again",
    "resource_limit_exceeded": "the box holds as many snapshots as it may: delete old ones or lower max_snapshots",
}


class StorageBoxError(RuntimeError):
    """The API refused or failed; the message says what was being done and the fix."""


@dataclass(frozen=True)
class Snapshot:
    id: int
    name: str
    created: str
    automatic: bool
    size_bytes: int | None


@dataclass(frozen=True)
class BoxStatus:
    id: int
    name: str
    server: str
    size_bytes: int
    used_bytes: int
    snapshots_bytes: int
    plan: TargetSnapshots | None
    snapshots: tuple[Snapshot, ...]

    @property
    def free_bytes(self) -> int:
        return max(0, self.size_bytes - self.used_bytes - self.snapshots_bytes)


class StorageBox:
    def __init__(self, client: Client, box_id: int, *, poll_s: float = 1.0, wait_s: float = 120.0) -> None:
        self._client = client
        self._id = box_id
        self._poll_s = poll_s
        self._wait_s = wait_s

    @classmethod
    def connect(cls, token: str, box_id: int, *, api_endpoint: str = HETZNER_API_URL, **options: float
                ) -> StorageBox:
        if not token.strip():
            raise StorageBoxError(f"the Hetzner API token is empty: {_TOKEN_FIX}")
        endpoint = require_secure_endpoint(api_endpoint, default=HETZNER_API_URL)
        client = Client(token.strip(), api_endpoint_hetzner=endpoint, application_name="drape-fleet", timeout=30)
        return cls(client, box_id, **options)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except APIException as exc:
            code = str(exc.code)
            fix = _FIXES.get(code, "Hetzner's API is failing or busy: run again later (https://status.hetzner.com)")
            raise StorageBoxError(f"Storage Box {self._id}: {doing} failed: {exc.message} ({code}). Fix: {fix}"
                                  ) from None
        except requests.RequestException as exc:
            raise StorageBoxError(f"Storage Box {self._id}: {doing}: cannot reach the Hetzner API "
                                  f"({type(exc).__name__}). Fix: check the network") from None

    def _wait(self, action_id: int, doing: str) -> None:
        deadline = time.monotonic() + self._wait_s
        while True:
            with self._errors(doing):
                action = self._client.storage_boxes.actions.get_by_id(action_id)
            if action.status == "success":
                return
            if action.status == "error":
                error: Any = action.error or {}
                raise StorageBoxError(f"Storage Box {self._id}: {doing}: Hetzner reports the action failed "
                                      f"({error.get('code')}: {error.get('message')})")
            if time.monotonic() > deadline:
                raise StorageBoxError(f"Storage Box {self._id}: {doing} is still running after {self._wait_s:.0f} s; "
                                      "run `invoke backup.target` again later to see it")
            time.sleep(self._poll_s)

    def status(self) -> BoxStatus:
        with self._errors("reading the box"):
            box = self._client.storage_boxes.get_by_id(self._id)
            snaps = self._client.storage_boxes.get_snapshot_all(box)
        stats = box.stats
        plan = box.snapshot_plan
        return BoxStatus(
            id=self._id, name=str(box.name), server=str(box.server),
            size_bytes=int(stats.size or 0) if stats else 0, used_bytes=int(stats.size_data or 0) if stats else 0,
            snapshots_bytes=int(stats.size_snapshots or 0) if stats else 0,
            plan=TargetSnapshots(max_snapshots=plan.max_snapshots, hour=plan.hour, minute=plan.minute)
            if plan and plan.max_snapshots else None,
            snapshots=tuple(Snapshot(int(s.id or 0), str(s.name), str(s.created), bool(s.is_automatic),
                                     int(s.stats.size) if s.stats else None)
                            for s in sorted(snaps, key=lambda s: str(s.created))),
        )

    def snapshot(self, description: str) -> int:
        """A snapshot of the whole box now (before risky work); returns its id once Hetzner finished it."""
        with self._errors("creating a snapshot"):
            made = self._client.storage_boxes.create_snapshot(self._client.storage_boxes.get_by_id(self._id),
                                                              description=description,
                                                              labels={"managed-by": "drape-fleet"})
        self._wait(int(made.action.id), "creating a snapshot")
        return int(made.snapshot.id or 0)

    def ensure_plan(self, wanted: TargetSnapshots, *, apply: bool, log: Callable[[str], None]) -> bool:
        """Make the box's snapshot plan ``wanted`` (daily at hour:minute UTC, keeping max_snapshots); True if it
        differed. A dry run (``apply=False``) only says what would change."""
        current = self.status().plan
        if current == wanted:
            log(f"snapshot plan: no change (daily {wanted.hour:02d}:{wanted.minute:02d}, keep {wanted.max_snapshots})")
            return False
        log(f"snapshot plan: {current or 'none'} -> daily {wanted.hour:02d}:{wanted.minute:02d}, keep "
            f"{wanted.max_snapshots}" + ("" if apply else " (dry run: pass --apply)"))
        if apply:
            plan = StorageBoxSnapshotPlan(max_snapshots=wanted.max_snapshots, hour=wanted.hour, minute=wanted.minute)
            with self._errors("setting the snapshot plan"):
                box = self._client.storage_boxes.get_by_id(self._id)
                action = self._client.storage_boxes.enable_snapshot_plan(box, plan)
            self._wait(int(action.id), "setting the snapshot plan")
        return True
