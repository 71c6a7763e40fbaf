"""Bad input gets the runtime's meaning as an HTTP answer, with the field and the fix; nothing is placed."""

from __future__ import annotations

import logging
import math
import socket
import time
from pathlib import Path

import pytest
import requests
from runtime_testkit import eventually
from service_testkit import ServedWorld, served

from drape_fleet.config.service import CallerLimits, ServiceSettings


def test_no_or_a_wrong_token_is_401_and_no_token_reaches_the_log(svc: ServedWorld,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drape_fleet.service")
    wrong = "drt_" + "x" * 43
    for client in (svc.client(None), svc.client(wrong)):
        answer = client.start("ws-1")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["error"] == "unauthorized" and "Bearer" in answer.json()["fix"]
    lowercase = requests.put(f"{svc.service.url}/v1/previews/ws-1", timeout=10,
                             headers={"Authorization": f"bearer {next(iter(svc.tokens.tokens))}"},
                             json={"user": "u1", "framework": "tiny"})
    assert lowercase.status_code == 200, "the scheme is case-insensitive (RFC 7235)"
    text = eventually(lambda: "by backend" in caplog.text and caplog.text)  # logged once the answer is sent
    assert "401" in text and "no valid token" in text
    assert wrong not in text
    assert not any(token in text for token in svc.tokens.tokens), "a valid token was logged"


def test_healthz_and_readyz_answer_without_a_token_and_nothing_else_does(svc: ServedWorld) -> None:
    anonymous = svc.client(None)
    assert anonymous.call("GET", "/healthz").json() == {"status": "ok", "instance": "test"}
    ready = anonymous.call("GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["engines"] == {"ax1": True, "ax2": True, "ax3": True}
    for path in ("/metrics", "/openapi.json", "/v1/previews", "/v1/hosts", "/docs", "/nothing"):
        assert anonymous.call("GET", path).status_code == 401, path


def test_a_token_without_the_scope_is_403(svc: ServedWorld) -> None:
    answer = svc.backend.call("POST", "/v1/hosts/ax1/cordon", json={})
    assert answer.status_code == 403 and answer.json()["fix"] == "use a token with the 'fleet' scope"
    assert svc.backend.call("GET", "/metrics").status_code == 403
    assert svc.ops.call("GET", "/metrics").status_code == 200


def test_a_body_that_is_not_json_or_has_extra_fields_is_422_naming_the_field(svc: ServedWorld) -> None:
    not_json = svc.backend.call("PUT", "/v1/previews/ws-1", data=b"{user: u1",
                                headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    assert not_json.json()["field"] == "body" and "JSON" in not_json.json()["fix"]

    extra = svc.backend.start("ws-1", colour="blue")
    assert extra.status_code == 422
    assert extra.json()["field"] == "body.colour" and "unknown field 'colour'" in extra.json()["message"]
    assert extra.json()["problems"][0]["fix"].startswith("remove it")

    missing = svc.backend.call("PUT", "/v1/previews/ws-1", json={"framework": "tiny"})
    assert missing.status_code == 422 and missing.json()["field"] == "body.user"
    wrong_type = svc.backend.start("ws-1", wait_s="soon")
    assert wrong_type.status_code == 422 and wrong_type.json()["field"] == "body.wait_s"
    nested = svc.backend.start("ws-1", resources={"memory_mib": 256, "gpus": 1})
    assert nested.status_code == 422 and nested.json()["field"] == "body.resources.gpus"
    assert svc.world.everywhere() == {"ax1": [], "ax2": [], "ax3": []}


def test_an_oversized_body_is_413_whether_or_not_it_says_its_length(svc: ServedWorld) -> None:
    big = {"user": "u1", "framework": "tiny", "env": {"BIG": "x" * 70_000}}
    declared = svc.backend.call("PUT", "/v1/previews/ws-1", json=big)
    assert declared.status_code == 413 and declared.json()["field"] == "body"
    chunked = svc.backend.call("PUT", "/v1/previews/ws-1", data=iter([b'{"user": "u1", "env": {"A": "'] +
                                                                      [b"x" * 8192] * 10 + [b'"}}']),
                               headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert svc.world.everywhere() == {"ax1": [], "ax2": [], "ax3": []}


def test_a_workspace_of_another_user_is_409(svc: ServedWorld) -> None:
    assert svc.backend.start("ws-1", wait_s=10).json()["phase"] == "ready"
    other = svc.backend.start("ws-1", user="u2")
    assert other.status_code == 409
    assert other.json()["error"] == "workspace_conflict" and other.json()["field"] == "user"
    framework = svc.backend.start("ws-1", framework="other")
    assert framework.status_code == 409 and framework.json()["field"] == "framework"
    assert "stop the running preview first" in framework.json()["fix"]


def test_an_unknown_framework_is_400_listing_the_known_ones(svc: ServedWorld) -> None:
    answer = svc.backend.start("ws-1", framework="rails")
    assert answer.status_code == 400
    assert answer.json()["error"] == "unknown_framework" and answer.json()["field"] == "framework"
    assert answer.json()["known"] == ["other", "tiny"] and answer.json()["fix"] == "use one of: other, tiny"


def test_unsafe_values_are_400_naming_the_field(svc: ServedWorld) -> None:
    assert svc.backend.start("-bad").json()["field"] == "workspace"
    assert svc.backend.call("GET", "/v1/previews/bad$id").json()["field"] == "workspace"
    for field, body in (("user", {"user": "a b"}), ("ref", {"ref": "../x"}), ("env", {"env": {"PATH": "/x"}}),
                        ("repo", {"repo": "file:///etc"}),
                        ("resources.memory_mib", {"resources": {"cpus": 1, "memory_mib": 999_999}})):
        answer = svc.backend.start("ws-1", **body)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
        assert answer.json()["fix"]
    assert svc.world.everywhere() == {"ax1": [], "ax2": [], "ax3": []}


def test_a_flood_from_one_caller_is_429_with_retry_after_and_others_go_on(tmp_path: Path) -> None:
    settings = ServiceSettings(limits=CallerLimits(rate_per_s=1, burst=10))
    for svc in served(tmp_path, settings=settings):
        started = time.monotonic()
        answers = [svc.backend.call("GET", "/v1/previews/ws-1").status_code for _ in range(30)]
        refilled = math.ceil(time.monotonic() - started)  # one more per second, however slow the machine is
        assert 10 <= answers.count(404) <= 10 + refilled and answers.count(429) >= 20 - refilled, answers
        assert answers[:10] == [404] * 10
        limited = svc.backend.call("GET", "/v1/previews/ws-1")
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) == 1
        assert svc.ops.call("GET", "/v1/previews/ws-1").status_code == 404, "another caller has its own bucket"


def test_a_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    from runtime_testkit import HALF

    for svc in served(tmp_path, queue_limit=1):
        half = HALF.model_dump()
        for i in range(6):
            assert svc.backend.start(f"full-{i}", resources=half, wait_s=10).json()["phase"] == "ready"
        placing = svc.backend.start("waits", resources=half).json()["phase"]
        waiting = svc.backend.call("GET", "/v1/previews/waits/wait", params={"after": placing, "timeout_s": 10})
        assert waiting.json()["phase"] == "queued" and waiting.json()["queue_position"] == 1
        refused = svc.backend.start("refused", resources=half)
        assert refused.status_code == 503 and refused.json()["error"] == "queue_full"
        assert refused.headers["Retry-After"] == "10"
        assert 'drape_preview_failures_total{reason="queue_full"} 1.0' in svc.ops.call("GET", "/metrics").text


def test_a_host_that_does_not_answer_is_503_with_retry_after_and_readyz_tells(svc: ServedWorld) -> None:
    svc.world.hosts["ax2"].down = True
    answer = svc.ops.call("POST", "/v1/hosts/ax2/cordon", json={"reason": "test"})
    assert answer.status_code == 503 and answer.json()["error"] == "host_unavailable"
    assert answer.json()["field"] == "host" and int(answer.headers["Retry-After"]) >= 1
    time.sleep(2.1)  # past the readiness cache
    ready = svc.client(None).call("GET", "/readyz").json()
    assert ready["status"] == "ready" and ready["engines"] == {"ax1": True, "ax2": False, "ax3": True}
    for host in ("ax1", "ax3"):
        svc.world.hosts[host].down = True
    time.sleep(2.1)
    assert svc.client(None).call("GET", "/readyz").status_code == 503


def test_a_refused_body_is_read_to_its_end_before_the_answer(svc: ServedWorld) -> None:
    """Answering mid-body and closing resets the connection, and a reset can overtake the answer (Caddy in front
    then cuts the 413 off half-sent): the answer waits until the body is in, and the connection stays usable."""
    host, port = svc.service.url.removeprefix("http://").split(":")
    body = b'{"user": "u1", "framework": "tiny", "env": {"A": "' + b"x" * 300_000 + b'"}}'
    head = (f"PUT /v1/previews/ws-1 HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: {svc.backend.session.headers['Authorization']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body[:100_000])
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(65536)  # nothing yet: the rest of the body is still to come
        conn.settimeout(10)
        conn.sendall(body[100_000:])
        answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "the connection was closed after the refusal"


def test_a_strangers_body_is_not_waited_for_past_the_size_limit(svc: ServedWorld) -> None:
    """No token: the 401 goes once the size limit has been read, without waiting for the rest of a big body."""
    host, port = svc.service.url.removeprefix("http://").split(":")
    head = (f"PUT /v1/previews/ws-1 HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2_000_000}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + b"x" * 200_000)
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 401")
