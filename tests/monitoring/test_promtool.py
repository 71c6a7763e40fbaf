"""The rules and Alertmanager's configuration checked by Prometheus' own tools: `promtool check rules`,
`promtool test rules` (every alert rule, see promtool_cases.py), `promtool check config`, `amtool check-config`
and `amtool config routes test` (where each kind of alert goes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from drape_fleet.config import FleetConfig
from drape_fleet.config.monitoring import ServiceJob
from drape_fleet.config.secrets import Secrets
from drape_fleet.monitoring.alertmanager import alertmanager_config
from drape_fleet.monitoring.plan import monitoring_plan
from drape_fleet.monitoring.receivers import monitoring_secrets
from drape_fleet.monitoring.rules import AlertRule, rule_groups, rules_file
from drape_fleet.monitoring.server import BACKUP_RULES_PATH, RULES_PATH, prometheus_config
from drape_fleet.provision.render import files_path
from tests.monitoring.promtool_cases import CASES, alerts_covered, promtool_tests

Tool = Callable[[str], str]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _with_service(fleet: FleetConfig) -> FleetConfig:
    """Production as it will be once the runtime service runs on every host (its scrape job, its rules)."""
    assert fleet.monitoring is not None
    monitoring = fleet.monitoring.model_copy(update={"services": (ServiceJob(name="drape-runtime", port=8420),)})
    return fleet.model_copy(update={"monitoring": monitoring})


@pytest.mark.parametrize("which", ["lab", "production"])
def test_rendered_rules_pass_promtool_check(which: str, request: pytest.FixtureRequest, tool: Tool,
                                            tmp_path: Path) -> None:
    fleet: FleetConfig = request.getfixturevalue(which)
    plan = monitoring_plan(_with_service(fleet))
    path = tmp_path / "drape-alerts.yml"
    path.write_text(rules_file(plan.settings, clock_synced_here=plan.clock_synced_here))
    run = _run(tool("promtool"), "check", "rules", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_alert_rule_has_unit_tests_and_they_pass(production: FleetConfig, tool: Tool, tmp_path: Path) -> None:
    settings = _with_service(production).monitoring
    assert settings is not None
    groups = rule_groups(settings)
    alerts = {rule.name for group in groups for rule in group.rules if isinstance(rule, AlertRule)}
    assert alerts == alerts_covered(), "an alert without a promtool test, or a test for a missing alert"
    (tmp_path / "drape-alerts.yml").write_text(rules_file(settings))
    tests = []
    for interval, content in promtool_tests(groups, "drape-alerts.yml").items():
        tests.append(tmp_path / f"drape-alerts-every-{interval}.test.yml")
        tests[-1].write_text(json.dumps(content, indent=1))
    run = _run(tool("promtool"), "test", "rules", *map(str, tests))
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "SUCCESS" in run.stdout
    assert len(CASES) >= len(alerts)


def test_a_rule_that_does_not_parse_fails_the_check(production: FleetConfig, tool: Tool, tmp_path: Path) -> None:
    assert production.monitoring is not None
    text = rules_file(production.monitoring).replace('up{job="node"} == 0', 'up{job="node" == 0', 1)
    path = tmp_path / "broken.yml"
    path.write_text(text)
    run = _run(tool("promtool"), "check", "rules", str(path))
    assert run.returncode != 0
    assert "HostDown" in run.stdout + run.stderr or "parse error" in run.stdout + run.stderr


@pytest.mark.parametrize("which", ["lab", "production"])
def test_prometheus_config_passes_promtool_check(which: str, request: pytest.FixtureRequest, tool: Tool,
                                                 tmp_path: Path) -> None:
    """The configuration as the server gets it, its rule files (ours and the backups') where `rule_files` points."""
    fleet: FleetConfig = request.getfixturevalue(which)
    plan = monitoring_plan(_with_service(fleet))
    (tmp_path / "rules").mkdir()
    (tmp_path / RULES_PATH).write_text(rules_file(plan.settings, clock_synced_here=plan.clock_synced_here))
    shutil.copy(files_path(f"monitoring/{BACKUP_RULES_PATH}"), tmp_path / BACKUP_RULES_PATH)
    (tmp_path / "prometheus.yml").write_text(prometheus_config(plan))
    run = _run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 2 rule files found" in run.stdout + run.stderr


ROUTES = {
    "production": [(("severity=critical", "alertname=HostDown"), "ops-pager,ops-mail"),
                   (("severity=warning", "alertname=DiskAlmostFull"), "ops-mail"),
                   (("severity=none", "alertname=Watchdog"), "heartbeat")],
    "lab": [(("severity=critical", "alertname=HostDown"), "lab-pager"),
            (("severity=warning", "alertname=DiskAlmostFull"), "lab-alerts"),
            (("severity=none", "alertname=Watchdog"), "lab-heartbeat")],
}


@pytest.mark.parametrize("which", ["lab", "production"])
def test_alertmanager_config_passes_amtool_and_routes_as_documented(which: str, request: pytest.FixtureRequest,
                                                                    secrets: Secrets, tool: Tool,
                                                                    tmp_path: Path) -> None:
    fleet: FleetConfig = request.getfixturevalue(which)
    assert fleet.monitoring is not None
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config(fleet.monitoring, monitoring_secrets(fleet.monitoring, secrets)))
    run = _run(tool("amtool"), "check-config", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    for labels, receivers in ROUTES[which]:
        routed = _run(tool("amtool"), "config", "routes", "test", f"--config.file={path}", *labels)
        assert routed.stdout.strip() == receivers, (labels, routed.stdout, routed.stderr)
