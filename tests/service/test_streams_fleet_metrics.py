"""Phase streams, the fleet endpoints, the metrics after a known sequence, token rotation, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from runtime_testkit import eventually
from service_testkit import ServedWorld

from drape_fleet.config.service import CallerLimits
from drape_fleet.service.auth import RELOAD_EVERY_S, TokenTable


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_event_stream_sends_each_phase_until_ready(svc: ServedWorld) -> None:
    svc.backend.start("ws-1")
    with svc.backend.call("GET", "/v1/previews/ws-1/events", stream=True) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        events: list[tuple[str, dict[str, object]]] = []
        name = ""
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
                if name == "end":
                    break
    phases = [data["phase"] for name, data in events if name == "phase"]
    assert phases[-1] == "ready" and len(phases) == len(set(phases)), phases
    assert events[-1] == ("end", {"reason": "final"})


def test_hosts_cordon_and_uncordon_over_http(svc: ServedWorld) -> None:
    hosts = svc.ops.call("GET", "/v1/hosts").json()["hosts"]
    assert [h["name"] for h in hosts] == ["ax1", "ax2", "ax3"]
    assert all(h["reachable"] and not h["cordoned"] and h["memory_free"] == h["memory_capacity"] for h in hosts)
    cordoned = svc.ops.call("POST", "/v1/hosts/ax1/cordon", json={"reason": "kernel update"})
    assert cordoned.status_code == 200 and cordoned.json()["cordoned"] is True
    assert cordoned.json()["cordon_reason"] == "kernel update"
    for i in range(3):
        assert svc.backend.start(f"ws-{i}", wait_s=10).json()["host"] != "ax1"
    again = svc.ops.call("POST", "/v1/hosts/ax1/cordon", json={})
    assert again.status_code == 200, "cordon is idempotent"
    assert svc.ops.call("POST", "/v1/hosts/ax1/uncordon").json()["cordoned"] is False
    unknown = svc.ops.call("POST", "/v1/hosts/ax9/cordon", json={})
    assert unknown.status_code == 404 and unknown.json()["known"] == ["ax1", "ax2", "ax3"]
    no_drain = svc.ops.call("GET", "/v1/hosts/ax2/drain")
    assert no_drain.status_code == 404


def test_a_drain_runs_in_the_background_and_reports_its_progress(svc: ServedWorld) -> None:
    assert svc.backend.start("ws-1", wait_s=10).json()["phase"] == "ready"
    host = svc.backend.call("GET", "/v1/previews/ws-1").json()["host"]
    started = svc.ops.call("POST", f"/v1/hosts/{host}/drain", json={"idle_s": 0, "deadline_s": 0})
    assert started.status_code == 202 and started.json()["host"] == host
    state = eventually(lambda: (s := svc.ops.call("GET", f"/v1/hosts/{host}/drain").json()) and not s["running"] and s,
                       within=20)
    assert state["error"] is None and state["remaining"] == 0 and state["progress"]
    assert svc.ops.call("GET", "/v1/hosts").json()["hosts"][int(host[-1]) - 1]["cordoned"] is True


def test_metrics_count_a_known_sequence_by_kind(svc: ServedWorld) -> None:
    assert svc.backend.start("cold-1", wait_s=10).json()["phase"] == "ready"      # cold: new project
    assert svc.backend.start("cold-1").json()["phase"] == "ready"                 # hot
    prewarm = svc.backend.call("PUT", "/v1/previews/pre-1/prewarm", json={"user": "u1", "framework": "tiny"})
    assert prewarm.status_code == 200
    waited = svc.backend.call("GET", "/v1/previews/pre-1/wait", params={"after": prewarm.json()["phase"]}).json()
    while not waited["final"]:
        waited = svc.backend.call("GET", "/v1/previews/pre-1/wait", params={"after": waited["phase"]}).json()
    assert svc.backend.start("pre-1").json()["phase"] == "ready"                 # prewarmed (made by the pre-warm)
    svc.backend.call("DELETE", "/v1/previews/cold-1")
    assert svc.backend.start("cold-1", wait_s=10).json()["phase"] == "ready"    # warm: that project was ready here
    svc.backend.start("x", framework="rails")
    route = {"caller": "backend", "route": "/v1/previews/{workspace}"}
    # A request is counted once its answer is sent: the scrape may come first.
    text = eventually(lambda: (t := svc.ops.call("GET", "/metrics").text) and
                      value(t, "drape_runtime_request_seconds_count", **route) == 6 and t)
    assert value(text, "drape_preview_starts_total", kind="cold") == 1
    assert value(text, "drape_preview_starts_total", kind="hot") == 1
    assert value(text, "drape_preview_starts_total", kind="prewarmed") == 1
    assert value(text, "drape_preview_starts_total", kind="warm") == 1
    assert value(text, "drape_preview_start_seconds_count", kind="cold") == 1
    assert value(text, "drape_preview_start_seconds_count", kind="warm") == 1
    assert value(text, "drape_preview_phase_seconds_count", phase="placing", kind="cold") == 1
    assert value(text, "drape_preview_phase_seconds_count", phase="placing", kind="prewarmed") == 1
    assert sum(v for (name, _), v in samples(text).items() if name == "drape_preview_placements_total") == 3
    assert value(text, "drape_runtime_requests_total", caller="backend", method="PUT", route="/v1/previews/{workspace}",
                 status="400") == 1
    assert value(text, "drape_host_previews", host="ax1") + value(text, "drape_host_previews", host="ax2") + \
        value(text, "drape_host_previews", host="ax3") == 2
    assert value(text, "drape_host_memory_capacity_bytes", host="ax1") == 1024 ** 3
    assert value(text, "drape_preview_queue_length") == 0


def test_tokens_rotate_without_a_restart(tmp_path: Path) -> None:
    from service_testkit import Tokens

    clock = [0.0]
    tokens = Tokens(tmp_path / "tokens.toml")
    old = tokens.add("backend")
    table = TokenTable(tokens.path, CallerLimits(), clock=lambda: clock[0])
    new = tokens.add("backend")
    assert table.authenticate(f"Bearer {new}") is None, "read again only after the interval"
    clock[0] += RELOAD_EVERY_S
    assert table.authenticate(f"Bearer {new}").name == "backend"   # type: ignore[union-attr]
    assert table.authenticate(f"Bearer {old}").name == "backend"   # type: ignore[union-attr]
    tokens.revoke(old)
    clock[0] += RELOAD_EVERY_S
    assert table.authenticate(f"Bearer {old}") is None
    tokens.path.write_text("[[tokens]]\ncaller = 'backend'\n")   # a broken file keeps the tokens in force
    clock[0] += RELOAD_EVERY_S
    assert table.authenticate(f"Bearer {new}") is not None
    assert table.authenticate("Basic abc") is None and table.authenticate(None) is None


def test_the_openapi_document_comes_from_the_models(svc: ServedWorld) -> None:
    document = svc.backend.call("GET", "/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/v1/previews/{workspace}", "/v1/previews/{workspace}/wait", "/v1/previews/{workspace}/events",
        "/v1/previews/{workspace}/prewarm", "/v1/previews/{workspace}/activity", "/v1/previews", "/v1/hosts",
        "/v1/hosts/{host}/cordon", "/v1/hosts/{host}/drain", "/healthz", "/readyz"}
    schemas = document["components"]["schemas"]
    assert schemas["StartBody"]["additionalProperties"] is False
    assert set(schemas["Phase"]["enum"]) == {"queued", "placing", "starting", "installing", "compiling", "ready",
                                              "failed", "lost"}
    assert "409" in paths["/v1/previews/{workspace}"]["put"]["responses"]
