"""The service's API over fake engines: what the backend calls, answered as the imported runtime answers."""

from __future__ import annotations

import time

from service_testkit import ServedWorld


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
    assert stopped.status_code == 200 and stopped.json() == {"workspace": "ws-1", "stopped": True}
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
