"""The Fly fake against the published documents, with raw HTTP (no client of ours in between): the shapes of
the reference's example answers, wait semantics, lease rules, error bodies, rate limits, and process mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from fakes.fly_machines import DEFAULT_TOKEN, FakeFly
from fly_testing import APP

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
SUPPORT = Path(__file__).resolve().parents[2] / "support"


def call(fly: FakeFly, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return requests.request(method, f"{fly.url}/apps/{APP}/machines{path}", headers=headers, timeout=70, **kwargs)


def test_machine_has_the_fields_of_the_reference_example(fly: FakeFly) -> None:
    """reference/machines/_machines_get_resp.erb: id, name, state, region, image_ref, instance_id,
    private_ip, created_at, updated_at, config, events (type, status, source, timestamp in ms)."""
    added = fly.world.add_machine(APP, metadata={"drape_role": "preview"})
    answer = call(fly, "GET", f"/{added.id}")
    assert answer.status_code == 200 and answer.headers["fly-request-id"]
    body = answer.json()
    assert set(body) >= {"id", "name", "state", "region", "image_ref", "instance_id", "private_ip", "created_at",
                         "updated_at", "config", "events"}
    assert set(body["image_ref"]) >= {"registry", "repository", "tag", "digest"}
    assert len(body["instance_id"]) == 26 and len(body["id"]) == 14
    assert body["created_at"].endswith("Z") and body["config"]["metadata"] == {"drape_role": "preview"}
    assert set(body["events"][0]) == {"type", "status", "source", "timestamp"}
    assert body["events"][0]["timestamp"] > 1_600_000_000_000
    listed = call(fly, "GET", "").json()
    assert isinstance(listed, list) and listed[0]["id"] == added.id


def test_lifecycle_answers_match_the_examples(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP, state="stopped")
    start = call(fly, "POST", f"/{added.id}/start")
    assert start.status_code == 200
    assert start.json() == {"previous_state": "stopped", "migrated": False, "new_host": ""}  # _machines_start_resp
    assert call(fly, "GET", f"/{added.id}").json()["state"] == "starting"
    assert call(fly, "GET", f"/{added.id}/wait", params={"state": "started", "timeout": 5}).json() == {"ok": True}
    stop = call(fly, "POST", f"/{added.id}/stop", json={"signal": "SIGTERM", "timeout": "10s"})
    assert stop.json() == {"ok": True}  # _machines_ok_true_resp
    assert call(fly, "POST", f"/{added.id}/stop", json={"signal": "SIGBOGUS"}).status_code == 400
    metadata = call(fly, "POST", f"/{added.id}/metadata/foo-key", json={"value": "bar"})
    assert metadata.status_code == 204 and metadata.content == b""  # "Status: 204 No content"
    assert call(fly, "GET", f"/{added.id}/metadata").json() == {"foo-key": "bar"}


def test_wait_blocks_until_the_state_is_reached(fly: FakeFly) -> None:
    fly.world.transition_s = 0.5
    added = fly.world.add_machine(APP, state="started")
    call(fly, "POST", f"/{added.id}/stop")
    started = time.monotonic()
    answer = call(fly, "GET", f"/{added.id}/wait",
                  params={"state": "stopped", "instance_id": added.instance_id, "timeout": 10})
    assert answer.status_code == 200 and 0.4 <= time.monotonic() - started < 2


def test_wait_rules(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP, state="stopped")
    missing = call(fly, "GET", f"/{added.id}/wait", params={"state": "stopped"})
    assert missing.status_code == 400 and "instance_id" in missing.json()["error"]  # "Required when ... stopped"
    bad = call(fly, "GET", f"/{added.id}/wait", params={"state": "running"})
    assert bad.status_code == 400
    started = time.monotonic()
    timeout = call(fly, "GET", f"/{added.id}/wait", params={"state": "started", "timeout": 1})
    assert timeout.status_code == 408 and 0.9 <= time.monotonic() - started < 3
    assert timeout.json() == {"error": "deadline_exceeded: machine failed to reach desired state, started, "
                                       "currently stopped"}
    old_version = call(fly, "GET", f"/{added.id}/wait",
                       params={"state": "stopped", "instance_id": "01OLDVERSION0000000000000", "timeout": 1})
    assert old_version.status_code == 408 and "currently replaced" in old_version.json()["error"]


def test_lease_rules(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP, state="started")
    created = call(fly, "POST", f"/{added.id}/lease", json={"description": "", "ttl": 500})
    assert created.status_code == 201  # "201 Created"
    envelope = created.json()
    assert envelope["status"] == "success"  # _machines_lease_create_resp
    assert set(envelope["data"]) == {"nonce", "expires_at", "owner", "description", "version"}
    nonce = envelope["data"]["nonce"]
    assert envelope["data"]["version"] == added.instance_id
    assert call(fly, "GET", f"/{added.id}/lease").json() == envelope

    held = call(fly, "POST", f"/{added.id}/stop")
    assert held.status_code == 409
    assert held.json()["error"].startswith(f"aborted: machine ID {added.id} lease currently held by ")
    assert call(fly, "POST", f"/{added.id}/lease", json={"ttl": 5}).status_code == 409
    assert call(fly, "POST", f"/{added.id}/stop", headers={"fly-machine-lease-nonce": "wrong"}).status_code == 409
    assert call(fly, "POST", f"/{added.id}/stop", headers={"fly-machine-lease-nonce": nonce}).status_code == 200

    assert call(fly, "DELETE", f"/{added.id}/lease").status_code == 400  # the header is required
    released = call(fly, "DELETE", f"/{added.id}/lease", headers={"fly-machine-lease-nonce": nonce})
    assert released.json() == {"status": "success", "data": {"ok": True}}  # _machines_lease_release_resp
    assert call(fly, "GET", f"/{added.id}/lease").json() == {"error": "lease not found"}


def test_leases_expire(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP, state="started")
    call(fly, "POST", f"/{added.id}/lease", params={"ttl": 1})  # fly-go sends ttl as a query parameter
    assert call(fly, "POST", f"/{added.id}/cordon").status_code == 409
    time.sleep(1.1)
    assert call(fly, "POST", f"/{added.id}/cordon").status_code == 200


def test_error_bodies_are_fly_go_error_responses(fly: FakeFly) -> None:
    """fly-go flaps_error.go: ``{"error": "..."}`` (``status`` optional) for every failure."""
    no_token = requests.get(f"{fly.url}/apps/{APP}/machines", timeout=5)
    assert no_token.status_code == 401 and no_token.json() == {"error": "Authenticate: token validation error"}
    foreign = requests.get(f"{fly.url}/apps/{APP}/machines", headers={"Authorization": "Bearer other-app-token"},
                           timeout=5)
    assert foreign.status_code == 403 and foreign.json() == {"error": "unauthorized"}
    assert call(fly, "GET", "/0123456789abcd").json() == {"error": "machine not found"}
    assert requests.get(f"{fly.url}/apps/nope/machines", headers=AUTH, timeout=5).json() == {"error": "app not found"}
    running = fly.world.add_machine(APP, state="started")
    refused = call(fly, "DELETE", f"/{running.id}")
    assert refused.status_code == 412 and refused.json()["error"].startswith("failed_precondition: ")
    assert call(fly, "DELETE", f"/{running.id}", params={"force": "true"}).status_code == 200


def test_destroyed_machines_vanish_except_for_include_deleted(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP, state="stopped")
    assert call(fly, "DELETE", f"/{added.id}").status_code == 200  # stopped: no force needed
    assert call(fly, "GET", f"/{added.id}/wait", params={"state": "destroyed", "timeout": 5}).status_code == 200
    assert call(fly, "GET", f"/{added.id}").status_code == 404
    assert call(fly, "GET", "").json() == []
    deleted = call(fly, "GET", "", params={"include_deleted": "true"}).json()
    assert [(m["id"], m["state"]) for m in deleted] == [(added.id, "destroyed")]


def test_rate_limit_per_action_per_machine() -> None:
    """1 req/s per action per machine, bursts of 3; Get Machine 5/s, bursts of 10 (working-with-machines-api)."""
    with FakeFly() as fake:
        one = fake.world.add_machine(APP, state="stopped")
        two = fake.world.add_machine(APP, state="stopped")
        statuses = [call(fake, "POST", f"/{one.id}/stop").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = call(fake, "POST", f"/{one.id}/stop")
        assert limited.json() == {"error": "rate limit exceeded"} and int(limited.headers["Retry-After"]) >= 1
        assert call(fake, "POST", f"/{two.id}/stop").status_code == 200  # another machine: its own bucket
        assert call(fake, "POST", f"/{one.id}/cordon").status_code == 200  # another action: its own bucket
        gets = [call(fake, "GET", f"/{one.id}").status_code for _ in range(11)]
        assert gets.count(200) == 10 and gets[-1] == 429
        time.sleep(1.05)
        assert call(fake, "POST", f"/{one.id}/stop").status_code == 200


def test_runs_as_a_process_for_lab_tests() -> None:
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    process = subprocess.Popen([sys.executable, "-m", "fakes.fly_machines", "--token", "proc-token",
                                "--app", "proc-app=2"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("FAKE_FLY_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        listed = requests.get(f"{url}/apps/proc-app/machines", headers={"Authorization": "Bearer proc-token"},
                              timeout=5)
        assert listed.status_code == 200 and {m["state"] for m in listed.json()} == {"started"}
        assert len(listed.json()) == 2
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("path", ["/v1/apps", "/v1/apps/x/volumes", "/v2/apps/x/machines"])
def test_unknown_routes_are_404(fly: FakeFly, path: str) -> None:
    base = fly.url.rsplit("/v1", 1)[0]
    assert requests.get(base + path, headers=AUTH, timeout=5).status_code == 404
