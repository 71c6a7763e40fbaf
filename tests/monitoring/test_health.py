"""`drape_fleet.monitoring.health` judged on answers shaped like Prometheus' and Alertmanager's HTTP APIs (their
documented JSON: /api/v1/targets, /api/v1/rules, /api/v1/alertmanagers, /api/v1/query, /api/v2/alerts), and the
API seam's one-SSH-session batching. The lab tests ask the real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drape_fleet import shell
from drape_fleet.config import FleetConfig
from drape_fleet.monitoring.api import MARKER, MonitoringApi, MonitoringUnreachable, Request, parse_responses
from drape_fleet.monitoring.health import MonitoringHealth, evaluate, requests, window_s
from drape_fleet.monitoring.plan import MonitoringPlan, monitoring_plan
from drape_fleet.ssh import SshTarget


@pytest.fixture
def plan(production: FleetConfig) -> MonitoringPlan:
    return monitoring_plan(production)


def _target(job: str, host: str, address: str, health: str = "up", error: str = "") -> dict[str, Any]:
    return {"labels": {"job": job, "host": host, "instance": address}, "scrapeUrl": f"http://{address}/metrics",
            "lastError": error, "health": health}


def _vector(value: float | None) -> dict[str, Any]:
    result = [] if value is None else [{"metric": {}, "value": [1780000000.0, str(value)]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def healthy_answers(plan: MonitoringPlan) -> dict[str, tuple[int, Any]]:
    targets = [_target(job.name, t.host, t.address) for job in plan.jobs for t in job.targets]
    rule = {"name": "HostDown", "state": "inactive", "health": "ok", "lastError": "", "type": "alerting"}
    return {
        "ready": (200, "Prometheus Server is Ready.\n"),
        "targets": (200, {"status": "success", "data": {"activeTargets": targets, "droppedTargets": []}}),
        "rules": (200, {"status": "success", "data": {"groups": [{"name": "drape-hosts", "rules": [rule]}]}}),
        "alertmanagers": (200, {"status": "success", "data": {
            "activeAlertmanagers": [{"url": "http://127.0.0.1:9093/api/v2/alerts"}], "droppedAlertmanagers": []}}),
        "am_ready": (200, "OK"),
        "attempts": (200, _vector(4)),
        "failed": (200, _vector(0)),
        "send_errors": (200, _vector(None)),
        "watchdog": (200, [{"labels": {"alertname": "Watchdog", "severity": "none"},
                            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}]),
    }


def _evaluate(plan: MonitoringPlan, **changes: tuple[int, Any]) -> MonitoringHealth:
    answers = {**healthy_answers(plan), **changes}
    wanted = requests(plan)
    responses = {}
    for name, (status, body) in answers.items():
        text = body if isinstance(body, str) else json.dumps(body)
        responses[name] = parse_responses([wanted[name]], f"{MARKER}\n{text}\n{status}\n")[0]
    return evaluate(plan, responses)


def _check(health: MonitoringHealth, name: str) -> tuple[bool, str]:
    [found] = [c for c in health.checks if c.name == name]
    return found.ok, found.detail


def test_everything_working(plan: MonitoringPlan) -> None:
    health = _evaluate(plan)
    assert health.ok, health.failed()
    assert [c.name for c in health.checks] == ["prometheus", "targets", "rules", "alertmanager", "delivering",
                                               "watchdog"]
    assert _check(health, "targets") == (True, "5 targets up")
    assert _check(health, "delivering")[1].startswith(f"in the last {window_s(plan)} s: 4 notification(s) delivered")


def test_a_target_down_or_never_scraped_is_named(plan: MonitoringPlan) -> None:
    answers = healthy_answers(plan)
    targets = answers["targets"][1]["data"]["activeTargets"]
    targets[1] = _target("node", "ax2", "10.0.0.12:9100", "down", 'Get "http://10.0.0.12:9100/metrics": timeout')
    del targets[2]
    ok, detail = _check(_evaluate(plan, targets=answers["targets"]), "targets")
    assert not ok
    assert "node on ax2 is down: Get \"http://10.0.0.12:9100/metrics\": timeout" in detail
    assert "node on ax3 is not scraped (redeploy: invoke provision --only monitoring_server)" in detail


def test_failed_deliveries_or_none_at_all_fail_the_pipeline(plan: MonitoringPlan) -> None:
    ok, detail = _check(_evaluate(plan, attempts=(200, _vector(5)), failed=(200, _vector(5))), "delivering")
    assert not ok and "0 notification(s) delivered, 5 failed" in detail
    assert not _check(_evaluate(plan, attempts=(200, _vector(None))), "delivering")[0]
    assert not _check(_evaluate(plan, send_errors=(200, _vector(2))), "delivering")[0]


def test_a_silent_watchdog_fails(plan: MonitoringPlan) -> None:
    ok, detail = _check(_evaluate(plan, watchdog=(200, [])), "watchdog")
    assert not ok and "the heartbeat will page" in detail
    suppressed = [{"labels": {"alertname": "Watchdog"}, "status": {"state": "suppressed", "silencedBy": ["x"]}}]
    assert not _check(_evaluate(plan, watchdog=(200, suppressed)), "watchdog")[0]


def test_prometheus_without_alertmanager_or_with_broken_rules(plan: MonitoringPlan) -> None:
    no_managers = {"status": "success", "data": {"activeAlertmanagers": [], "droppedAlertmanagers": []}}
    assert not _check(_evaluate(plan, alertmanagers=(200, no_managers)), "alertmanager")[0]
    broken = {"name": "HostDown", "health": "err", "lastError": "many-to-many matching not allowed"}
    rules = {"status": "success", "data": {"groups": [{"name": "drape-hosts", "rules": [broken]}]}}
    ok, detail = _check(_evaluate(plan, rules=(200, rules)), "rules")
    assert not ok and detail == "HostDown: many-to-many matching not allowed"


def test_requests_share_one_ssh_session_and_unreachable_is_an_error(plan: MonitoringPlan) -> None:
    calls: list[str] = []

    def run(target: SshTarget, command: str, timeout: float) -> shell.Result:
        calls.append(command)
        return shell.Result(0, f"{MARKER}\n{{\"status\": \"success\"}}\n200\n{MARKER}\nnot found\n404\n", "")

    server = SshTarget("203.0.113.13", "deploy", key=Path("/ops/id_ed25519"), known_hosts=Path("/ops/known_hosts"),
                       alias="ax3")
    api = MonitoringApi(server, plan, run=run)
    first, second = api.fetch([Request("prometheus", "/api/v1/query", (("query", 'up{job="node"} == 0'),)),
                               Request("alertmanager", "/api/v2/status")])
    assert len(calls) == 1
    assert "'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22node%22%7D+%3D%3D+0'" in calls[0]
    assert "http://127.0.0.1:9093/api/v2/status" in calls[0]
    assert (first.status, first.json()) == (200, {"status": "success"})
    assert (second.status, second.body) == (404, "not found")

    def unreachable(target: SshTarget, command: str, timeout: float) -> shell.Result:
        return shell.Result(255, "", "ssh: connect to host 203.0.113.13 port 22: No route to host")

    with pytest.raises(MonitoringUnreachable, match="cannot reach the monitoring server ax3 over SSH: ssh: connect"):
        MonitoringApi(api.target, plan, run=unreachable).fetch([Request("prometheus", "/-/ready")])
