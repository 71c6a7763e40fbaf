"""The preview URLs' DNS: a wildcard per preview host in the [preview_dns] zone, planned (dry run) then applied
through the real hcloud library against the local Cloud DNS fake; a second run changes nothing."""

from __future__ import annotations

import pytest
from dns_testing import ZONE
from fakes.hcloud_dns import FakeCloudDns

from drape_fleet.config import ConfigError, FleetConfig
from drape_fleet.config.previews import IngressSettings
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.ingress.dns import apply_all, host_targets, plan_all

SETTINGS = IngressSettings(domain=f"preview.{ZONE}", dns_ttl=120)


def with_dns(fleet: FleetConfig, zone: str = ZONE) -> FleetConfig:
    return FleetConfig.model_validate({**fleet.model_dump(mode="json"), "preview_dns": {"zone": zone}})


def previews(api: FakeCloudDns) -> dict[str, list[str]]:
    return {name: [r["value"] for r in rrset.records] for (name, kind), rrset in api.world.zone(ZONE).rrsets.items()
            if kind == "A" and name.startswith("*.")}


def test_each_preview_host_gets_its_own_wildcard(api: FakeCloudDns, dns: CloudDns, fleet: FleetConfig) -> None:
    targets = host_targets(with_dns(fleet), SETTINGS)
    plans = plan_all(dns, targets)
    lines = [line for plan in plans for line in plan.lines()]
    assert lines == [f"create *.{h.name}.preview.{ZONE} A -> {h.public_address} (TTL 120s)" for h in fleet.hosts
                     if "preview" in h.roles]
    assert previews(api) == {}  # the dry run touched nothing

    apply_all(dns, plans)
    made = previews(api)
    assert made == {f"*.{h.name}.preview": [str(h.public_address)] for h in fleet.hosts if "preview" in h.roles}
    again = plan_all(dns, host_targets(with_dns(fleet), SETTINGS))
    assert not any(plan.changed for plan in again)
    assert all("no change" in plan.lines()[0] for plan in again)


def test_a_domain_outside_the_zone_or_no_zone_is_refused_before_any_request(fleet: FleetConfig) -> None:
    with pytest.raises(ConfigError, match=r"preview_dns: this section is missing"):
        host_targets(fleet, SETTINGS)
    with pytest.raises(ConfigError, match=r"previews.ingress.domain: preview.drape.dev is not in the zone other.dev"):
        host_targets(with_dns(fleet, "other.dev"), SETTINGS)
    apex = host_targets(with_dns(fleet), IngressSettings(domain=ZONE))
    assert apex[0].name == f"*.{fleet.hosts[0].name}"
