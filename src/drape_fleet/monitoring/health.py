"""Is monitoring working? The library call behind `invoke monitoring.health` and `invoke cutover phase5`.

    from drape_fleet.environments import load
    from drape_fleet.monitoring.health import check

    health = check(load("production"))      # MonitoringHealth; raises nothing for a sick monitoring
    health.ok                                # every check passed
    for item in health.checks: print(item.name, item.ok, item.detail)

The checks, each read from the monitoring server itself (drape_fleet.monitoring.api, over SSH):

- ``prometheus``: Prometheus answers ready.
- ``targets``: every target the inventory implies (each host's node_exporter and services, Prometheus,
  Alertmanager) is scraped and up; missing ones mean the server's configuration is older than the fleet file.
- ``rules``: the alert rules are loaded and evaluate without errors.
- ``alertmanager``: Alertmanager answers ready and Prometheus sends to it.
- ``delivering``: over the last window (three watchdog intervals and two scrapes), Alertmanager delivered
  notifications and none failed, and Prometheus had no errors sending alerts. The watchdog guarantees traffic.
- ``watchdog``: the always-firing Watchdog is active in Alertmanager, so the outside heartbeat gets its pings.

Pure evaluation (``evaluate``) over the API's answers; ``check`` only fetches them. An unreachable server is a
failed ``prometheus`` check, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drape_fleet.config.monitoring import seconds
from drape_fleet.environments import FleetTarget
from drape_fleet.monitoring.api import MonitoringApi, MonitoringUnreachable, Request, Response
from drape_fleet.monitoring.plan import MonitoringPlan, monitoring_plan
from drape_fleet.monitoring.rules import WATCHDOG


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class MonitoringHealth:
    server: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.checks)

    def failed(self) -> tuple[Check, ...]:
        return tuple(item for item in self.checks if not item.ok)


def window_s(plan: MonitoringPlan) -> int:
    """How far back ``delivering`` looks: long enough to hold several watchdog pings and scrapes."""
    settings = plan.settings
    return math.ceil(3 * seconds(settings.watchdog.interval) + 2 * seconds(settings.scrape_interval))


def requests(plan: MonitoringPlan) -> dict[str, Request]:
    window = f"{window_s(plan)}s"
    query = "/api/v1/query"
    return {
        "ready": Request("prometheus", "/-/ready"),
        "targets": Request("prometheus", "/api/v1/targets", (("state", "active"),)),
        "rules": Request("prometheus", "/api/v1/rules", (("type", "alert"),)),
        "alertmanagers": Request("prometheus", "/api/v1/alertmanagers"),
        "am_ready": Request("alertmanager", "/-/ready"),
        "attempts": Request("prometheus", query, (
            ("query", f"sum(increase(alertmanager_notifications_total[{window}]))"),)),
        "failed": Request("prometheus", query, (
            ("query", f"sum(increase(alertmanager_notifications_failed_total[{window}]))"),)),
        "send_errors": Request("prometheus", query, (
            ("query", f"sum(increase(prometheus_notifications_errors_total[{window}]))"),)),
        "watchdog": Request("alertmanager", "/api/v2/alerts", (("filter", f'alertname="{WATCHDOG}"'),)),
    }


def _scalar(response: Response) -> float | None:
    if response.status != 200:
        return None
    result = response.json().get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def _targets(plan: MonitoringPlan, response: Response) -> Check:
    if response.status != 200:
        return Check("targets", False, f"cannot list targets (HTTP {response.status})")
    active = response.json()["data"]["activeTargets"]
    seen = {(t["labels"].get("job"), t["labels"].get("host")): t for t in active}
    problems = []
    expected = [(job.name, target.host) for job in plan.jobs for target in job.targets]
    for job, host in expected:
        found = seen.get((job, host))
        if found is None:
            problems.append(f"{job} on {host} is not scraped (redeploy: invoke provision --only monitoring_server)")
        elif found.get("health") != "up":
            problems.append(f"{job} on {host} is {found.get('health')}: {found.get('lastError') or 'not scraped yet'}")
    if problems:
        return Check("targets", False, "; ".join(problems))
    return Check("targets", True, f"{len(expected)} targets up")


def _rules(response: Response) -> Check:
    if response.status != 200:
        return Check("rules", False, f"cannot list rules (HTTP {response.status})")
    groups = response.json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") not in ("ok", "unknown")]
    if not rules:
        return Check("rules", False, "no alert rules are loaded")
    if broken:
        return Check("rules", False, "; ".join(broken))
    return Check("rules", True, f"{len(rules)} alert rules evaluate")


def evaluate(plan: MonitoringPlan, answers: Mapping[str, Response]) -> MonitoringHealth:
    checks = []
    ready = answers["ready"]
    checks.append(Check("prometheus", ready.status == 200, "ready" if ready.status == 200 else
                        f"not ready (HTTP {ready.status}): {ready.body.strip()[:200]}"))
    checks.append(_targets(plan, answers["targets"]))
    checks.append(_rules(answers["rules"]))
    managers = answers["alertmanagers"]
    active = managers.json()["data"]["activeAlertmanagers"] if managers.status == 200 else []
    am_ok = answers["am_ready"].status == 200 and bool(active)
    checks.append(Check("alertmanager", am_ok, "ready, and Prometheus sends to it" if am_ok else
                        f"Alertmanager ready: {answers['am_ready'].status == 200}; "
                        f"Prometheus knows {len(active)} Alertmanager(s)"))
    window = window_s(plan)
    attempts, failed = _scalar(answers["attempts"]), _scalar(answers["failed"]) or 0.0
    delivered = (attempts or 0.0) - failed
    send_errors = _scalar(answers["send_errors"]) or 0.0
    delivering = delivered > 0 and not failed and not send_errors
    checks.append(Check("delivering", delivering,
                        f"in the last {window} s: {delivered:.0f} notification(s) delivered, {failed:.0f} "
                        f"failed; Prometheus send errors: {send_errors:.0f}"))
    watchdog = answers["watchdog"]
    alerts: Sequence[Any] = watchdog.json() if watchdog.status == 200 else []
    firing = [a for a in alerts if a.get("status", {}).get("state") == "active"]
    checks.append(Check("watchdog", bool(firing), f"{WATCHDOG} is firing, so the heartbeat receiver "
                        f"{plan.settings.watchdog.receiver!r} gets a ping every {plan.settings.watchdog.interval}"
                        if firing else f"{WATCHDOG} is not active in Alertmanager: the heartbeat will page"))
    return MonitoringHealth(plan.server.name, tuple(checks))


def check(target: FleetTarget, api: MonitoringApi | None = None) -> MonitoringHealth:
    """Ask the environment's monitoring server; ``MonitoringRefused`` if the fleet file has no monitoring."""
    plan = monitoring_plan(target.fleet, str(target.env.fleet_file))
    api = api or MonitoringApi(target.ssh_target(plan.server), plan)
    wanted = requests(plan)
    try:
        answers = dict(zip(wanted, api.fetch(list(wanted.values())), strict=True))
    except MonitoringUnreachable as exc:
        return MonitoringHealth(plan.server.name, (Check("prometheus", False, str(exc)),))
    try:
        return evaluate(plan, answers)
    except MonitoringUnreachable as exc:
        return MonitoringHealth(plan.server.name, (Check("prometheus", False, str(exc)),))
