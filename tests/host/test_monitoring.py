"""Monitoring on the host, read from the host: node_exporter and the collectors' timers on every host, listening
where the fleet file says and nowhere else; Prometheus and Alertmanager on the monitoring server, on loopback
only, with Alertmanager's secret-bearing configuration readable by root and its group alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drape_fleet.config import FleetConfig, Host

TEXTFILES = "/var/lib/prometheus/node-exporter"


@pytest.fixture(scope="module")
def monitoring(fleet: FleetConfig) -> Any:
    if fleet.monitoring is None:
        pytest.fail("the fleet file has no [monitoring] section: every host is monitored")
    return fleet.monitoring


def _listening(host: Any, port: int) -> set[str]:
    """Local addresses with a TCP listener on ``port`` (``ss``)."""
    lines = host.check_output(f"ss -Hltn 'sport = :{port}'").splitlines()
    return {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in lines if line.strip()}


def test_node_exporter_listens_on_the_private_address_only(host: Any, me: Host, monitoring: Any) -> None:
    assert host.service("prometheus-node-exporter").is_running
    assert host.service("prometheus-node-exporter").is_enabled
    assert _listening(host, monitoring.exporters.node_exporter_port) == {str(me.private_address)}


def test_collectors_run_on_timers_and_write_fresh_metrics(host: Any, fleet: FleetConfig) -> None:
    collectors = ["docker", "updates", "tls"] + (["smart"] if fleet.provisioning.storage.disk_monitoring else [])
    for name in collectors:
        assert host.service(f"drape-node-metrics-{name}.timer").is_running, name
        text = host.file(f"{TEXTFILES}/drape_{name}.prom").content_string
        assert f'drape_collector_success{{collector="{name}"}} 1' in text, text
    docker = host.file(f"{TEXTFILES}/drape_docker.prom")
    assert time.time() - docker.mtime.timestamp() < 120, "the docker collector has not run for minutes"
    assert "drape_docker_engine_up 1" in docker.content_string


def test_monitoring_server_listens_on_loopback_only(host: Any, me: Host, fleet: FleetConfig, monitoring: Any) -> None:
    server = me.name == monitoring.server
    for unit in ("prometheus", "prometheus-alertmanager"):
        assert host.service(unit).is_running == server, unit
    if not server:
        return
    assert _listening(host, monitoring.prometheus_port) == {"127.0.0.1"}
    assert _listening(host, monitoring.alertmanager.port) == {"127.0.0.1"}
    assert _listening(host, 9094) == set(), "Alertmanager's cluster port is open: it runs alone"
    config = host.file("/etc/prometheus/drape/alertmanager.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
