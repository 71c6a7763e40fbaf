"""The [monitoring] section and the receivers' secrets: bad input fails when the fleet file loads, or when a
deploy starts, naming the file, the field and the fix; secret values never appear in messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from drape_fleet.config import ConfigError, FleetConfig, Secrets, load_secrets
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.monitoring import seconds
from drape_fleet.monitoring.plan import MonitoringRefused, monitoring_plan, require_monitoring
from drape_fleet.monitoring.receivers import check_monitoring, monitoring_secrets
from tests.monitoring.conftest import FAKE_SECRETS

RECEIVERS = [{"name": "ops", "kind": "webhook", "secret": "ops_url"},
             {"name": "heartbeat", "kind": "webhook", "secret": "heartbeat_url"}]


def _fleet(**monitoring: Any) -> dict[str, Any]:
    section = {"server": "ax2", "receivers": RECEIVERS, "default_receiver": "ops",
               "watchdog": {"receiver": "heartbeat"}, **monitoring}
    return {
        "environment": {"name": "staging"},
        "network": {"admin_allowlist": ["203.0.113.7/32"], "backend_addresses": ["10.0.0.2/32"]},
        "provisioning": {"firewall": {"private_network": ["10.0.0.0/24"]}},
        "hosts": [{"name": f"ax{i}", "public_address": f"203.0.113.1{i}", "private_address": f"10.0.0.1{i}",
                   "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}} for i in (1, 2)],
        "monitoring": section,
    }


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_fleet(data, source="staging.toml")
    return str(caught.value)


def test_a_valid_section_loads_with_production_defaults() -> None:
    fleet = validate_fleet(_fleet(), source="staging.toml")
    assert fleet.monitoring is not None
    assert fleet.monitoring.alerts.disk_used_percent == 85
    assert fleet.monitoring.alerts.certificate_days == 14
    assert fleet.monitoring.alerts.reboot_required_days == 7
    assert fleet.monitoring.exporter_ports == (9100,)
    assert [seconds(d) for d in ("30s", "5m", "1h30m", "7d", "2w")] == [30, 300, 5400, 604800, 1209600]


def test_a_monitoring_server_missing_from_the_inventory_is_refused_with_the_hosts() -> None:
    message = _problems(_fleet(server="ax7"))
    assert "staging.toml" in message
    assert "monitoring.server: 'ax7' is not a host of this fleet" in message
    assert "one of ax1, ax2" in message


def test_no_monitoring_section_refuses_the_deploy_and_shows_one_to_copy() -> None:
    data = _fleet()
    del data["monitoring"]
    fleet = validate_fleet(data, source="staging.toml")
    with pytest.raises(MonitoringRefused) as caught:
        require_monitoring(fleet, "config/staging.toml")
    message = str(caught.value)
    assert "config/staging.toml has no [monitoring] section" in message
    assert "(ax1, ax2)" in message and '[monitoring]\nserver = "ax3"' in message
    with pytest.raises(MonitoringRefused):
        monitoring_plan(fleet)


@pytest.mark.parametrize(("change", "expected"), [
    ({"default_receiver": "nobody"}, "default_receiver: no receiver is called 'nobody'"),
    ({"routes": [{"receiver": "pager", "severity": ["critical"]}]}, "routes[0].receiver: no receiver is called"),
    ({"routes": [{"receiver": "ops"}]}, "a route without severity or alerts catches every alert"),
    ({"watchdog": {"receiver": "ops"}}, "watchdog.receiver: the watchdog's receiver gets a ping every interval"),
    ({"receivers": [*RECEIVERS, {"name": "ops", "kind": "webhook", "secret": "x"}]}, "receiver 'ops' is defined twice"),
    ({"receivers": [{"name": "ops", "kind": "webhook"}, RECEIVERS[1]]}, "a webhook needs its URL from the secrets"),
    ({"receivers": [{"name": "ops", "kind": "email", "to": "ops@example.com"}, RECEIVERS[1]]},
     "an e-mail receiver needs sender, smarthost"),
    ({"receivers": [{"name": "ops", "kind": "email", "to": "a@example.com", "sender": "b@example.com",
                     "smarthost": "smtp.example.com:587", "username": "b"}, RECEIVERS[1]]},
     "an SMTP login needs its password from the secrets store"),
    ({"receivers": [{"name": "ops", "kind": "email", "to": "a@example.com", "sender": "b@example.com",
                     "smarthost": "smtp.example.com:587", "secret": "pw"}, RECEIVERS[1]]},
     "an SMTP password without the login it belongs to"),
    ({"scrape_interval": "5s", "scrape_timeout": "10s"}, "the scrape timeout is longer than the scrape interval"),
    ({"scrape_interval": "half a minute"}, "scrape_interval"),
    ({"services": [{"name": "node", "port": 8420}]}, "the scrape job name 'node' is taken"),
    ({"services": [{"name": "drape-runtime", "port": 9100}]}, "port 9100 is already exporters.node_exporter_port"),
    ({"retention": {"days": 3650}}, "monitoring.retention.days: 3650 days of 2 hosts need about"),
    ({"receivers": [{"name": "ops", "kind": "webhook", "url": "http://10.0.0.1:9790/alerts"}, RECEIVERS[1]]},
     "monitoring.receivers[0].url: a receiver's URL belongs in the secrets store, not the fleet file"),
])
def test_bad_sections_name_the_field_and_the_fix(change: dict[str, Any], expected: str) -> None:
    message = _problems(_fleet(**change))
    assert expected in message
    assert "Fix:" in message


def test_only_the_lab_writes_a_webhook_url_inline(lab: FleetConfig) -> None:
    assert lab.monitoring is not None
    assert all(r.url is not None and r.secret is None for r in lab.monitoring.receivers)
    assert monitoring_secrets(lab.monitoring, Secrets()).receivers == {}


def test_a_receiver_without_its_secret_fails_at_deploy_time_saying_where_to_put_it(production: FleetConfig) -> None:
    present = {k: SecretStr(v) for k, v in FAKE_SECRETS.items() if k != "ops_pager_url"}
    with pytest.raises(ConfigError) as caught:
        assert production.monitoring is not None
        monitoring_secrets(production.monitoring, Secrets(monitoring=present, source="secrets.toml"))
    message = str(caught.value)
    assert "monitoring.ops_pager_url: receiver 'ops-pager' needs this secret (its URL) and it is not set" in message
    assert "[monitoring] in ~/.config/drape-fleet/secrets.toml" in message
    assert "DRAPE_MONITORING_OPS_PAGER_URL" in message
    assert not any(value in message for value in FAKE_SECRETS.values())
    with pytest.raises(MonitoringRefused, match="ops_pager_url"):
        check_monitoring(production, "config/production.toml", Secrets(monitoring=present))


def test_a_webhook_secret_that_is_not_a_url_is_refused_without_showing_it(production: FleetConfig) -> None:
    values = {**{k: SecretStr(v) for k, v in FAKE_SECRETS.items()}, "heartbeat_url": SecretStr("hunter2-not-a-url")}
    with pytest.raises(ConfigError) as caught:
        assert production.monitoring is not None
        monitoring_secrets(production.monitoring, Secrets(monitoring=values))
    assert "receiver 'heartbeat': this secret is not an http(s) URL (value not shown)" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_receivers_secrets_come_from_the_file_table_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('fly_api_token = "fly"\n[monitoring]\nops_url = "https://file.example.invalid/a"\n'
                    'heartbeat_url = "https://file.example.invalid/b"\n')
    path.chmod(0o600)
    secrets = load_secrets({"DRAPE_SECRETS_FILE": str(path),
                            "DRAPE_MONITORING_HEARTBEAT_URL": "https://env.example.invalid/c"})
    assert secrets.monitoring["ops_url"].get_secret_value() == "https://file.example.invalid/a"
    assert secrets.monitoring["heartbeat_url"].get_secret_value() == "https://env.example.invalid/c"
    assert secrets.value("fly_api_token") == "fly"
    assert "environment" in secrets.source


def test_a_monitoring_table_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('monitoring = "x"\n')
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="monitoring: must be a table of named secrets"):
        load_secrets({"DRAPE_SECRETS_FILE": str(path)})
    path.write_text("[monitoring]\nops_url = 3\n")
    with pytest.raises(ConfigError, match=r"monitoring\.ops_url: a secret must be a string"):
        load_secrets({"DRAPE_SECRETS_FILE": str(path)})


def test_retention_is_sized_for_the_fleet(production: FleetConfig) -> None:
    """3 hosts x 3000 series x 2880 samples a day x 30 days x 2 bytes, plus half again: 3 GiB."""
    plan = monitoring_plan(production)
    assert (plan.retention_days, plan.retention_gib) == (30, 3)
    bigger = production.model_copy(update={"hosts": production.hosts * 4})
    assert monitoring_plan(bigger).retention_gib == 9


def test_scrape_targets_come_from_the_inventory(production: FleetConfig) -> None:
    plan = monitoring_plan(production)
    assert [(t.host, t.address) for t in plan.job("node").targets] == [
        ("ax1", "10.0.0.11:9100"), ("ax2", "10.0.0.12:9100"), ("ax3", "10.0.0.13:9100")]
    assert plan.server.name == "ax3"
    assert [j.name for j in plan.jobs] == ["node", "prometheus", "alertmanager"]
