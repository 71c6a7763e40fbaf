"""A local fake of the Hetzner API's Storage Box part, as a real HTTP server on loopback (for hcloud 2.27).

Sources: the Hetzner API reference (docs.hetzner.cloud/reference/hetzner, "Storage Boxes", "Storage Box
Snapshots", "Storage Box Actions") and hcloud-python's storage_boxes client and domain. Followed: the objects'
fields (a box's ``stats`` {size, size_data, size_snapshots}, ``snapshot_plan`` or null, ``server``,
``username``; a snapshot's ``is_automatic``, ``stats``, ``storage_box`` id), the error body
``{"error": {"code", "message", "details"}}`` with ``unauthorized`` (401), ``not_found`` (404),
``invalid_input`` (400), ``locked`` (423) and ``resource_limit_exceeded`` (403) for a box at its snapshot
limit; snapshot creation answering 201 with a partial snapshot and a ``running`` action that later
``success``es, polled at ``/storage_boxes/actions/{id}``; the snapshot list unpaginated (as hcloud notes).
Inferred: the action ``command`` names, and snapshots named by their creation time.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from fakes.loopback import FakeHandler, Faults, LoopbackServer

TOKEN = "hetzner-test-token"
_STATUS = {"unauthorized": 401, "not_found": 404, "invalid_input": 400, "locked": 423,
           "resource_limit_exceeded": 403, "json_error": 400}


class ApiError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class BoxWorld:
    boxes: dict[int, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    actions: dict[int, dict[str, Any]] = field(default_factory=dict)
    polls_until_done: int = 1
    snapshot_limit: int = 10
    next_id: int = 1000
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_box(self, box_id: int, *, size: int = 1_000_000_000_000, used: int = 0) -> None:
        self.boxes[box_id] = {
            "id": box_id, "username": f"u{box_id}", "status": "active", "name": f"drape-backups-{box_id}",
            "storage_box_type": {"name": "bx11", "description": "BX11", "snapshot_limit": self.snapshot_limit,
                                 "automatic_snapshot_limit": self.snapshot_limit, "subaccounts_limit": 100,
                                 "size": size, "prices": [], "deprecation": None},
            "location": {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE",
                         "city": "Falkenstein", "latitude": 50.47612, "longitude": 12.370071,
                         "network_zone": "eu-central"},
            "access_settings": {"reachable_externally": True, "samba_enabled": False, "ssh_enabled": True,
                                "webdav_enabled": False, "zfs_enabled": False},
            "server": f"u{box_id}.your-storagebox.de", "system": "FSN1-BX355",
            "stats": {"size": size, "size_data": used, "size_snapshots": 0},
            "labels": {}, "protection": {"delete": False}, "snapshot_plan": None, "created": _now(),
        }
        self.snapshots[box_id] = []

    def action(self, command: str, box_id: int) -> dict[str, Any]:
        self.next_id += 1
        action = {"id": self.next_id, "command": command, "status": "running", "progress": 0, "started": _now(),
                  "finished": None, "resources": [{"id": box_id, "type": "storage_box"}], "error": None,
                  "_polls": 0}
        self.actions[action["id"]] = action
        return action


def _public(action: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in action.items() if not k.startswith("_")}


class StorageBoxHandler(FakeHandler):
    world: ClassVar[BoxWorld]

    def _handle(self, method: str) -> None:
        raw = self.read_body()
        path = self.path.split("?")[0]
        self.world.requests.append((method, path))
        fault = self.world.faults.take(method, path)
        if fault is not None:
            self.reply(fault.status, fault.body, fault.headers)
            return
        try:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise ApiError("unauthorized", "unable to authenticate")
            body = json.loads(raw) if raw else {}
            with self.world.lock:
                status, answer = self._route(method, path, body)
        except ValueError:
            self.reply(400, ApiError("json_error", "invalid JSON").body())
            return
        except ApiError as exc:
            self.reply(_STATUS.get(exc.code, 500), exc.body())
            return
        self.reply(status, answer)

    def _box(self, box_id: str) -> dict[str, Any]:
        box = self.world.boxes.get(int(box_id))
        if box is None:
            raise ApiError("not_found", "Storage Box not found")
        return box

    def _route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        world = self.world
        if match := re.fullmatch(r"/v1/storage_boxes/actions/(\d+)", path):
            action = world.actions.get(int(match[1]))
            if action is None or method != "GET":
                raise ApiError("not_found", "action not found")
            action["_polls"] += 1
            if action["status"] == "running" and action["_polls"] >= world.polls_until_done:
                action.update(status="success", progress=100, finished=_now())
            return 200, {"action": _public(action)}
        if (match := re.fullmatch(r"/v1/storage_boxes/(\d+)", path)) and method == "GET":
            return 200, {"storage_box": self._box(match[1])}
        if match := re.fullmatch(r"/v1/storage_boxes/(\d+)/snapshots", path):
            box = self._box(match[1])
            if method == "GET":
                return 200, {"snapshots": world.snapshots[box["id"]]}
            if method == "POST":
                if len(world.snapshots[box["id"]]) >= world.snapshot_limit:
                    raise ApiError("resource_limit_exceeded", "snapshot limit reached")
                if not isinstance(body.get("description", ""), str):
                    raise ApiError("invalid_input", "invalid input in field 'description'",
                                   {"fields": [{"name": "description", "messages": ["must be a string"]}]})
                world.next_id += 1
                snapshot = {"id": world.next_id, "name": datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%f"),
                            "description": body.get("description", ""), "is_automatic": False,
                            "labels": body.get("labels") or {}, "created": _now(), "storage_box": box["id"],
                            "stats": {"size": 0, "size_filesystem": box["stats"]["size_data"]}}
                world.snapshots[box["id"]].append(snapshot)
                action = world.action("create_snapshot", box["id"])
                return 201, {"snapshot": {"id": snapshot["id"], "storage_box": box["id"]}, "action": _public(action)}
        if match := re.fullmatch(r"/v1/storage_boxes/(\d+)/actions/enable_snapshot_plan", path):
            box = self._box(match[1])
            if method == "POST":
                for name, low, high in (("max_snapshots", 1, world.snapshot_limit), ("hour", 0, 23),
                                        ("minute", 0, 59)):
                    value = body.get(name)
                    if not isinstance(value, int) or not low <= value <= high:
                        raise ApiError("invalid_input", f"invalid input in field '{name}'",
                                       {"fields": [{"name": name, "messages": [f"must be {low}..{high}"]}]})
                box["snapshot_plan"] = {k: body.get(k) for k in ("max_snapshots", "minute", "hour", "day_of_week",
                                                                 "day_of_month")}
                return 201, {"action": _public(world.action("enable_snapshot_plan", box["id"]))}
        raise ApiError("not_found", "not found")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


class FakeStorageBoxApi:
    """``with FakeStorageBoxApi() as api: api.world.add_box(42)``, then
    ``StorageBox.connect(TOKEN, 42, api_endpoint=api.url)``."""

    def __init__(self) -> None:
        self.world = BoxWorld()
        handler = type("Handler", (StorageBoxHandler,), {"world": self.world})
        self._server = LoopbackServer(handler, name="fake-storage-box")

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> FakeStorageBoxApi:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
