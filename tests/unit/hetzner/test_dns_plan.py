"""The pure side of preview DNS: the target's validation and the exact changes planned from each state."""

from __future__ import annotations

import pytest

from drape_fleet.hetzner.dns_plan import DnsChange, DnsError, DnsTarget, RRSetState, plan_changes, plan_removal

V4 = ["203.0.113.12", "203.0.113.11"]


def target(addresses: list[str] = V4, ttl: int | None = 300) -> DnsTarget:
    return DnsTarget.build("drape.dev", "*.preview", addresses, ttl=ttl)


def test_target_normalises_addresses() -> None:
    built = DnsTarget.build("Drape.dev.", "*.preview", ["203.0.113.12", "2001:db8::1", "203.0.113.11",
                                                        "203.0.113.12"])
    assert built.zone == "drape.dev" and built.fqdn == "*.preview.drape.dev"
    assert built.wanted() == {"A": ("203.0.113.11", "203.0.113.12"), "AAAA": ("2001:db8::1",)}
    assert DnsTarget.build("drape.dev", "@", V4).fqdn == "drape.dev"


@pytest.mark.parametrize(("zone", "name", "addresses", "ttl", "message"), [
    ("drape", "*.preview", V4, 300, "not a domain name"),
    ("drape.dev", "*.Preview", V4, 300, "lower case"),
    ("drape.dev", "*.preview.", V4, 300, "without a trailing dot"),
    ("drape.dev", "*.preview.drape.dev", V4, 300, "relative to the zone"),
    ("drape.dev", "a..b", V4, 300, "not usable"),
    ("drape.dev", "*.preview", ["203.0.113.300"], 300, "not an IP address"),
    ("drape.dev", "*.preview", ["127.0.0.1"], 300, "cannot be published"),
    ("drape.dev", "*.preview", [], 300, "name at least one host"),
    ("drape.dev", "*.preview", V4, 59, "TTL 59 is out of range"),
])
def test_bad_targets_are_refused_before_any_request(zone: str, name: str, addresses: list[str], ttl: int,
                                                    message: str) -> None:
    with pytest.raises(DnsError, match=message):
        DnsTarget.build(zone, name, addresses, ttl=ttl)


def test_nothing_there_creates_a_and_aaaa() -> None:
    plan = plan_changes(target([*V4, "2001:db8::1"]), {})
    assert plan.changes == (DnsChange("create", "A", after=("203.0.113.11", "203.0.113.12"), ttl_after=300),
                            DnsChange("create", "AAAA", after=("2001:db8::1",), ttl_after=300))
    assert plan.lines() == ["create *.preview.drape.dev A -> 203.0.113.11, 203.0.113.12 (TTL 300s)",
                            "create *.preview.drape.dev AAAA -> 2001:db8::1 (TTL 300s)"]


def test_the_same_records_in_another_order_are_no_change() -> None:
    plan = plan_changes(target(), {"A": RRSetState("A", ("203.0.113.12", "203.0.113.11"), 300)})
    assert not plan.changed
    assert plan.lines() == ["*.preview.drape.dev: no change (A 203.0.113.11, 203.0.113.12)"]


def test_other_addresses_and_ttl_and_a_stale_aaaa() -> None:
    current = {"A": RRSetState("A", ("198.51.100.1",), 3600), "AAAA": RRSetState("AAAA", ("2001:db8::9",), None)}
    assert plan_changes(target(), current).changes == (
        DnsChange("set_records", "A", before=("198.51.100.1",), after=("203.0.113.11", "203.0.113.12")),
        DnsChange("change_ttl", "A", ttl_before=3600, ttl_after=300),
        DnsChange("delete", "AAAA", before=("2001:db8::9",), ttl_before=None),
    )
    assert plan_changes(target(ttl=None), {"A": RRSetState("A", tuple(V4), 300)}).lines() == [
        "change *.preview.drape.dev A TTL 300s -> zone default"]


def test_removal_deletes_a_and_aaaa_only() -> None:
    plan = plan_removal("drape.dev", "*.preview", {"A": RRSetState("A", ("203.0.113.11",), 300),
                                                   "AAAA": RRSetState("AAAA", ("2001:db8::1",), 300)})
    assert [c.action + " " + c.type for c in plan.changes] == ["delete A", "delete AAAA"]
    assert plan_removal("drape.dev", "*.preview", {}).lines() == ["*.preview.drape.dev: no change (nothing to remove)"]


def test_a_cname_on_the_name_is_refused_with_the_fix() -> None:
    cname = {"CNAME": RRSetState("CNAME", ("edge.example.net.",), 300)}
    with pytest.raises(DnsError, match=r"is a CNAME to edge.example.net.*pass replace_cname"):
        plan_changes(target(), cname)
    assert plan_changes(target(), cname, replace_cname=True).lines() == [
        "delete *.preview.drape.dev CNAME (edge.example.net.)",
        "create *.preview.drape.dev A -> 203.0.113.11, 203.0.113.12 (TTL 300s)"]
