"""The service's API over fake engines: what the backend calls, answered as the imported runtime answers."""

from __future__ import annotations

import logging
import time

import pytest
from runtime_testkit import down
from service_testkit import ServedWorld

from drape_fleet.runtime.spec import REPO_TOKEN_FILE


def test_start_follow_phases_then_hot_start_and_stop(svc: ServedWorld) -> None:
    first = svc.backend.start("ws-1")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["workspace"] == "ws-1" and body["user"] == "u1" and body["framework"] == "tiny"
    phases = [body["phase"]]
    while not body["final"]:
        answer = svc.backend.call("GET", "/v1/previews/ws-1/wait", params={"after": body["phase"], "timeout_s": 5})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        phases.append(body["phase"])
    assert body["phase"] == "ready" and body["ready"] is True
    assert body["url"].startswith("http://127.0.0.") and body["host"] in ("ax1", "ax2", "ax3")
    assert phases[0] in ("placing", "starting") and phases[-1] == "ready"

    hot = svc.backend.start("ws-1").json()
    assert hot["phase"] == "ready" and hot["container_id"] == body["container_id"]

    status = svc.backend.call("GET", "/v1/previews/ws-1")
    assert status.status_code == 200 and status.json()["container_id"] == body["container_id"]
    assert svc.backend.call("POST", "/v1/previews/ws-1/activity").status_code == 204

    stopped = svc.backend.call("DELETE", "/v1/previews/ws-1")
    assert stopped.status_code == 200 and stopped.json() == {"workspace": "ws-1", "stopped": True, "pending_hosts": []}
    assert svc.world.everywhere() == {"ax1": [], "ax2": [], "ax3": []}
    gone = svc.backend.call("GET", "/v1/previews/ws-1")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    again = svc.backend.call("DELETE", "/v1/previews/ws-1")
    assert again.status_code == 200 and again.json()["stopped"] is False


def test_start_with_wait_holds_the_answer_until_ready(svc: ServedWorld) -> None:
    started = time.monotonic()
    answer = svc.backend.start("ws-2", wait_s=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["phase"] == "ready"
    assert time.monotonic() - started < 10


def test_a_repo_token_reaches_the_preview_as_a_file_and_nowhere_else(svc: ServedWorld,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "ghs_" + "s3cr3t" * 6
    answer = svc.backend.start("ws-repo", repo="https://github.com/acme/shop.git", repo_token=secret, wait_s=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["phase"] == "ready" and secret not in answer.text
    container = next(c for h in svc.world.hosts.values() for c in h.named("drape-pv-ws-repo"))
    assert container.files[REPO_TOKEN_FILE][0] == secret.encode()
    assert secret not in repr(container.body), "the token is in the container's configuration or labels"
    listed = svc.backend.call("GET", "/v1/previews").text + svc.backend.call("GET", "/v1/previews/ws-repo").text
    assert secret not in listed and secret not in caplog.text

    bad = svc.backend.start("ws-repo2", repo="https://github.com/acme/shop.git", repo_token="a b\n")
    assert bad.status_code == 400 and bad.json()["field"] == "repo_token" and "a b" not in bad.text
    credentials = svc.backend.start("ws-repo3", repo=f"https://x:{secret}@github.com/acme/shop.git")
    assert credentials.status_code == 400 and credentials.json()["field"] == "repo"
    assert "repo_token" in credentials.json()["message"]


def test_a_stop_while_a_host_is_down_names_it_and_is_applied_later(svc: ServedWorld) -> None:
    placed = svc.backend.start("ws-down", wait_s=10).json()
    host = placed["host"]
    svc.world.hosts[host].down = True
    down(svc.runtime, host)
    stopped = svc.backend.call("DELETE", "/v1/previews/ws-down")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {"workspace": "ws-down", "stopped": False, "pending_hosts": [host]}
    hosts = {h["name"]: h for h in svc.ops.call("GET", "/v1/hosts").json()["hosts"]}
    assert hosts[host]["state"] == "down" and hosts[host]["placeable"] is False and hosts[host]["unplaceable"]
