"""Every file the monitoring deploys put on a host, rendered as the deploys render it for the lab and for
config/production.toml, compared byte for byte with a reviewed golden in tests/fixtures/files/<env>/monitoring/
(the rule tests/unit/provision/test_host_files.py applies to the other deploys).

After an intended change: ``DRAPE_UPDATE_GOLDENS=1 pytest tests/monitoring/test_files.py`` rewrites the goldens
(and fails, so the diff is reviewed before the next run passes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from drape_fleet.config import FleetConfig
from drape_fleet.config.secrets import Secrets
from drape_fleet.monitoring import exporters, server
from drape_fleet.monitoring.alertmanager import alertmanager_config
from drape_fleet.monitoring.plan import monitoring_plan
from drape_fleet.monitoring.receivers import monitoring_secrets
from drape_fleet.monitoring.rules import rules_file
from drape_fleet.provision.render import TEMPLATE_SUFFIX, files_dir
from tests.monitoring.conftest import FAKE_SECRETS

GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "files"
HOST = "ax2"


def _secrets() -> Secrets:
    return Secrets(monitoring={k: SecretStr(v) for k, v in FAKE_SECRETS.items()})


def _alertmanager(fleet: FleetConfig) -> str:
    assert fleet.monitoring is not None
    return alertmanager_config(fleet.monitoring, monitoring_secrets(fleet.monitoring, _secrets()))


def _collector(name: str, unit: Callable[[exporters.Collector], str]) -> Callable[[FleetConfig], str]:
    def render(fleet: FleetConfig) -> str:
        found = [c for c in exporters.collectors(fleet) if c.name == name]
        return unit(found[0]) if found else "(not on this fleet's hosts)\n"
    return render


def _drop_in(which: str) -> Callable[[FleetConfig], str]:
    def render(fleet: FleetConfig) -> str:
        plan = monitoring_plan(fleet)
        if which == "prometheus":
            return server.service_drop_in("Prometheus", server.PROMETHEUS_BINARY, server.prometheus_args(plan))
        return server.service_drop_in("Alertmanager", server.ALERTMANAGER_BINARY, server.alertmanager_args(plan))
    return render


# Golden (under monitoring/) -> what the deploys render. Every template in files/monitoring is used here.
RENDERS: dict[str, tuple[str, Callable[[FleetConfig], str]]] = {
    "node-exporter.conf": ("node-exporter.conf.j2", lambda f: exporters.node_exporter_drop_in(f, HOST)),
    **{f"drape-node-metrics-{name}.service": ("drape-node-metrics.service.j2",
                                              _collector(name, exporters.collector_service))
       for name in ("docker", "updates", "tls", "smart")},
    **{f"drape-node-metrics-{name}.timer": ("drape-node-metrics.timer.j2", _collector(name, exporters.collector_timer))
       for name in ("docker", "updates", "tls", "smart")},
    "prometheus.yml": ("prometheus.yml.j2", lambda f: server.prometheus_config(monitoring_plan(f))),
    "drape-alerts.yml": ("drape-alerts.yml.j2", lambda f: rules_file(
        monitoring_plan(f).settings, clock_synced_here=monitoring_plan(f).clock_synced_here)),
    "alertmanager.yml": ("alertmanager.yml.j2", _alertmanager),
    "prometheus.service.d.conf": ("service-args.conf.j2", _drop_in("prometheus")),
    "prometheus-alertmanager.service.d.conf": ("service-args.conf.j2", _drop_in("alertmanager")),
}

PLAIN = {"drape-node-metrics", "drape-procfs-view", "consoles/drape-fleet.html", "consoles/drape-cutover.html",
         "console_libraries/drape.lib",
         "rules/backup.rules.yml"}  # the backups' alerts (docs/backups.md), for the monitoring server to load


def test_files_monitoring_holds_exactly_what_the_deploys_use() -> None:
    directory = files_dir() / "monitoring"
    on_disk = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    templates = {name for name in on_disk if name.endswith(TEMPLATE_SUFFIX)}
    assert templates == {template for template, _ in RENDERS.values()}
    assert on_disk - templates == PLAIN
    assert {f"consoles/{c}" for c in server.CONSOLES} | {f"console_libraries/{server.CONSOLE_LIBRARY}"} \
        == {p for p in PLAIN if p.startswith("console")}


@pytest.mark.parametrize("environment", ["lab", "production"])
@pytest.mark.parametrize("golden", sorted(RENDERS))
def test_render_matches_the_reviewed_golden(golden: str, environment: str, request: pytest.FixtureRequest) -> None:
    fleet: FleetConfig = request.getfixturevalue(environment)
    text = RENDERS[golden][1](fleet)
    path = GOLDENS / environment / "monitoring" / golden
    if os.environ.get("DRAPE_UPDATE_GOLDENS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.fail(f"rewrote {path}: review the diff, then run again without DRAPE_UPDATE_GOLDENS")
    assert text == path.read_text()


def test_lab_and_production_differ_where_the_data_says(lab: FleetConfig, production: FleetConfig) -> None:
    """The lab's exporter reads /proc through the view, its windows are seconds, its receivers local webhooks;
    production's clock alert also wants the clock synchronised (a lab stand-in shares this machine's clock)."""
    lab_exporter = exporters.node_exporter_drop_in(lab, HOST)
    assert "--path.procfs=/var/lib/drape/procfs" in lab_exporter
    assert "procfs" not in exporters.node_exporter_drop_in(production, HOST)
    assert "--web.listen-address=172.29.20.12:9100" in lab_exporter
    assert "--web.listen-address=10.0.0.12:9100" in exporters.node_exporter_drop_in(production, HOST)
    assert "node_timex_sync_status" in (GOLDENS / "production" / "monitoring" / "drape-alerts.yml").read_text()
    assert "node_timex_sync_status" not in (GOLDENS / "lab" / "monitoring" / "drape-alerts.yml").read_text()
    assert "smart" not in {c.name for c in exporters.collectors(lab)}
    assert "smart" in {c.name for c in exporters.collectors(production)}


def test_only_alertmanager_yml_holds_the_secrets(production: FleetConfig) -> None:
    """The receivers' secrets end up in the one file written 0640 root:prometheus, and nowhere else."""
    plan = monitoring_plan(production)
    files = server.server_files(plan, monitoring_secrets(plan.settings, _secrets()))
    for item in files:
        holds = any(secret in item.text for secret in FAKE_SECRETS.values())
        assert holds == item.secret == (item.path == server.ALERTMANAGER_YML), item.path
    others = [render(production) for name, (_, render) in RENDERS.items() if name != "alertmanager.yml"]
    assert not any(secret in text for secret in FAKE_SECRETS.values() for text in others)


def test_the_readme_lists_every_alert(production: FleetConfig) -> None:
    from drape_fleet.config.monitoring import ServiceJob
    from drape_fleet.monitoring.rules import AlertRule, rule_groups
    from drape_fleet.paths import project_root

    assert production.monitoring is not None
    settings = production.monitoring.model_copy(update={"services": (ServiceJob(name="drape-runtime", port=8420),)})
    readme = (project_root() / "src" / "drape_fleet" / "monitoring" / "README.md").read_text()
    listed = {cell.strip() for line in readme.splitlines() if line.startswith("| ")
              for cell in line.split("|")[1].split("/")}
    alerts = {r.name for g in rule_groups(settings) for r in g.rules if isinstance(r, AlertRule)}
    assert alerts <= listed, f"alerts missing from the README's table: {sorted(alerts - listed)}"
