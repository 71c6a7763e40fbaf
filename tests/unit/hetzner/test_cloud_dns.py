"""Preview DNS through the real hcloud library against the local Cloud DNS fake: dry run, apply, idempotence,
pagination, and every failure mapped to a message that says what to do."""

from __future__ import annotations

import pytest
from dns_testing import ZONE
from fakes.hcloud_dns import DEFAULT_TOKEN, FakeCloudDns

from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.hetzner.dns_plan import DnsError, DnsTarget

HOSTS = ["203.0.113.11", "203.0.113.12", "2001:db8::11"]


def target(addresses: list[str] = HOSTS, ttl: int | None = 300) -> DnsTarget:
    return DnsTarget.build(ZONE, "*.preview", addresses, ttl=ttl)


def records(api: FakeCloudDns) -> dict[str, tuple[list[str], int | None]]:
    zone = api.world.zone(ZONE)
    return {t: (sorted(r["value"] for r in rr.records), rr.ttl) for (n, t), rr in zone.rrsets.items()
            if n == "*.preview"}


def writes(api: FakeCloudDns) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in api.world.requests if r["method"] != "GET"]


def test_dry_run_reports_and_touches_nothing(api: FakeCloudDns, dns: CloudDns) -> None:
    plan = dns.point(target())
    assert plan.lines() == ["create *.preview.drape.dev A -> 203.0.113.11, 203.0.113.12 (TTL 300s)",
                            "create *.preview.drape.dev AAAA -> 2001:db8::11 (TTL 300s)"]
    assert records(api) == {} and writes(api) == []


def test_apply_then_a_second_run_changes_nothing(api: FakeCloudDns, dns: CloudDns) -> None:
    dns.point(target(), apply=True)
    assert records(api) == {"A": (["203.0.113.11", "203.0.113.12"], 300), "AAAA": (["2001:db8::11"], 300)}
    assert writes(api) == ["POST /v1/zones/drape.dev/rrsets", "POST /v1/zones/drape.dev/rrsets"]
    polled = [r["path"] for r in api.world.requests if "/actions/" in r["path"]]
    assert polled == [f"/v1/actions/{action_id}" for action_id in sorted(api.world.actions)]  # each change confirmed
    before = len(writes(api))
    again = dns.point(target(), apply=True)
    assert not again.changed and len(writes(api)) == before
    assert again.lines() == ["*.preview.drape.dev: no change (A 203.0.113.11, 203.0.113.12; AAAA 2001:db8::11)"]


def test_replacing_the_hosts_sets_records_changes_ttl_and_drops_aaaa(api: FakeCloudDns, dns: CloudDns) -> None:
    dns.point(target(), apply=True)
    plan = dns.point(target(["203.0.113.11", "203.0.113.13"], ttl=None), apply=True)
    assert [c.action for c in plan.changes] == ["set_records", "change_ttl", "delete"]
    assert records(api) == {"A": (["203.0.113.11", "203.0.113.13"], None)}
    assert writes(api)[-3:] == ["POST /v1/zones/drape.dev/rrsets/*.preview/A/actions/set_records",
                                "POST /v1/zones/drape.dev/rrsets/*.preview/A/actions/change_ttl",
                                "DELETE /v1/zones/drape.dev/rrsets/*.preview/AAAA"]


def test_remove_deletes_the_name_and_leaves_the_rest(api: FakeCloudDns, dns: CloudDns) -> None:
    dns.point(target(), apply=True)
    api.world.add_rrset(api.world.zone(ZONE), "www", "A", ["203.0.113.50"])
    assert dns.remove(ZONE, "*.preview").changed and records(api) != {}
    dns.remove(ZONE, "*.preview", apply=True)
    assert records(api) == {}
    assert {name for name, _ in dns.rrsets(ZONE)} == {"@", "www"}
    assert not dns.remove(ZONE, "*.preview").changed


def test_an_existing_cname_is_replaced_only_when_asked(api: FakeCloudDns, dns: CloudDns) -> None:
    api.world.add_rrset(api.world.zone(ZONE), "*.preview", "CNAME", ["previews.fly.dev."])
    with pytest.raises(DnsError, match=r"\*.preview.drape.dev is a CNAME to previews.fly.dev."):
        dns.point(target(), apply=True)
    assert writes(api) == []
    dns.point(target(), apply=True, replace_cname=True)  # the cutover moving previews off Fly
    assert records(api) == {"A": (["203.0.113.11", "203.0.113.12"], 300), "AAAA": (["2001:db8::11"], 300)}
    assert writes(api)[0] == "DELETE /v1/zones/drape.dev/rrsets/*.preview/CNAME"


def test_listing_reads_every_page(api: FakeCloudDns, dns: CloudDns) -> None:
    zone = api.world.zone(ZONE)
    for index in range(120):
        api.world.add_rrset(zone, f"host{index:03d}", "A", [f"198.51.100.{index % 250 + 1}"])
    listed = dns.rrsets(ZONE)
    assert len(listed) == 122  # 120 + the zone's own SOA and NS
    pages = [r["query"]["page"] for r in api.world.requests if r["path"].endswith("/rrsets")]
    assert pages == [["1"], ["2"], ["3"]]


def test_wrong_token_says_how_to_make_one(api: FakeCloudDns) -> None:
    with pytest.raises(DnsError) as caught:
        CloudDns.connect("wrong", api_endpoint=api.url).plan(target())
    assert "unable to authenticate (unauthorized)" in str(caught.value)
    assert "Read & Write API token" in str(caught.value) and "DRAPE_HCLOUD_TOKEN" in str(caught.value)


def test_read_only_token_plans_but_cannot_apply(api: FakeCloudDns) -> None:
    reader = CloudDns.connect("read-only-token", api_endpoint=api.url)
    assert reader.point(target()).changed
    with pytest.raises(DnsError, match=r"token_readonly.*DNS changes need Read & Write"):
        reader.point(target(), apply=True)
    assert records(api) == {}


def test_unknown_zone_and_secondary_zone(api: FakeCloudDns, dns: CloudDns) -> None:
    with pytest.raises(DnsError, match=r"reading zone nope.dev failed: zone not found.*Add zone"):
        dns.point(DnsTarget.build("nope.dev", "*.preview", HOSTS))
    api.world.add_zone("secondary.dev", mode="secondary")
    with pytest.raises(DnsError, match="secondary mode"):
        dns.point(DnsTarget.build("secondary.dev", "*.preview", HOSTS))
    with pytest.raises(DnsError, match=r"incorrect_zone_mode.*switch the zone to primary"):
        dns.rrsets("secondary.dev")


def test_invalid_input_names_the_field(api: FakeCloudDns, dns: CloudDns) -> None:
    api.world.inject(400, {"error": {"code": "invalid_input", "message": "invalid input in field 'records'",
                                     "details": {"fields": [{"name": "records", "messages": ["is invalid"]}]}}},
                     method="POST")
    with pytest.raises(DnsError, match=r"\(records: is invalid\).*Fix: Hetzner refused a value"):
        dns.point(target(), apply=True)


def test_a_failed_action_is_reported(api: FakeCloudDns, dns: CloudDns) -> None:
    failed = {"action": {"id": 4713, "command": "create_rrset", "status": "error", "progress": 100,
                         "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:01+00:00",
                         "resources": [], "error": {"code": "action_failed", "message": "nameserver sync failed"}}}
    api.world.inject(200, failed, path_contains="/actions/")
    with pytest.raises(DnsError, match=r"Hetzner reported the change failed.*nameserver sync failed"):
        dns.point(target(["203.0.113.11"]), apply=True)


def test_rate_limit_is_retried_by_hcloud_then_reported(api: FakeCloudDns, dns: CloudDns,
                                                       hcloud_sleeps: list[float]) -> None:
    limited = {"error": {"code": "rate_limit_exceeded", "message": "limit reached", "details": {}}}
    api.world.inject(429, limited, times=1)
    assert dns.point(target()).changed  # one refusal: hcloud waited and retried
    assert len(hcloud_sleeps) == 1
    api.world.inject(429, limited, times=10)
    with pytest.raises(DnsError, match=r"rate_limit_exceeded.*3600 requests/hour"):
        dns.point(target())
    assert len(hcloud_sleeps) == 6  # hcloud's 5 retries, then the error


def test_server_errors_and_unreachable_api(api: FakeCloudDns, dns: CloudDns, hcloud_sleeps: list[float]) -> None:
    api.world.inject(503, b"<html>maintenance</html>", times=1)
    with pytest.raises(DnsError, match=r"\(503\).*status.hetzner.com"):
        dns.point(target())
    url = api.url
    api.stop()
    with pytest.raises(DnsError, match="cannot reach the Cloud API"):
        CloudDns.connect(DEFAULT_TOKEN, api_endpoint=url, timeout_s=2).point(target())


def test_endpoint_and_token_checks() -> None:
    with pytest.raises(ValueError, match="only travel over https"):
        CloudDns.connect("t", api_endpoint="http://api.hetzner.cloud/v1")
    with pytest.raises(DnsError, match="token is empty"):
        CloudDns.connect("  ")
    with pytest.raises(ConfigError, match="DRAPE_HCLOUD_TOKEN"):
        CloudDns.from_secrets(load_secrets({"DRAPE_SECRETS_FILE": "/nonexistent"}))
    assert CloudDns.from_secrets(load_secrets({"DRAPE_SECRETS_FILE": "/nonexistent", "DRAPE_HCLOUD_TOKEN": "x"}))
