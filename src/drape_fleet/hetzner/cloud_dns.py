"""Hetzner Cloud DNS through the ``hcloud`` library: read a name's A/AAAA RRSets, apply a ``DnsPlan``.

Read, compare, act::

    dns = CloudDns.from_secrets(load_secrets())                         # token: hcloud_token
    target = DnsTarget.build("drape.dev", "*.preview", ["203.0.113.11", "203.0.113.12"], ttl=300)
    plan = dns.point(target)                 # dry run: what would change (nothing is touched)
    dns.point(target, apply=True)            # make exactly those changes, wait for Hetzner's actions
    dns.point(target)                        # a second run: "no change"

hcloud owns HTTP, its retries (rate limits, conflicts, 502/504, timeouts) and polling of actions; this
module maps whatever still fails to a ``DnsError`` that says what to do. ``api_endpoint`` exists for the
local fake in tests; the default is the real API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException, ActionTimeoutException, BoundAction
from hcloud.zones import BoundZone, Zone, ZoneRecord, ZoneRRSet

from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.models import FleetConfig
from drape_fleet.config.secrets import Secrets
from drape_fleet.endpoints import require_secure_endpoint
from drape_fleet.hetzner.dns_plan import DnsError, DnsPlan, DnsTarget, RRSetState, plan_changes, plan_removal

DEFAULT_API_ENDPOINT = "https://api.hetzner.cloud/v1"
_NEW_CREDENTIAL = ("create a Read & Write API token in the Hetzner Console project that holds the zone (Security → API "
              "tokens) and set DRAPE_HCLOUD_TOKEN, or hcloud_token in ~/.config/drape-fleet/secrets.toml")
# The Cloud API's error codes (reference, "Errors"; zones: incorrect_zone_mode) -> what to do.
_FIXES: dict[str, str] = {
    "unauthorized": f"the token was rejected: {_NEW_CREDENTIAL}",
    "forbidden": f"the token lacks permissions for DNS: {_NEW_CREDENTIAL}",
    "token_readonly": f"the token is read-only and DNS changes need Read & Write: {_NEW_CREDENTIAL}",
    "not_found": "it vanished meanwhile (someone else is changing the zone): run again",
    "incorrect_zone_mode": "the zone is in secondary mode (its records come from another primary nameserver): "
                           "change the records there, or switch the zone to primary",
    "protected": "the RRSet is change-protected: turn its protection off in the Console, then run again",
    "locked": "another change to this zone is still running: wait a minute and run again",
    "rate_limit_exceeded": "the project's API limit (3600 requests/hour, refilling 1/s) was still exhausted after "
                           "hcloud's retries: wait a few minutes and run again",
    "uniqueness_error": "the RRSet appeared meanwhile (someone else is changing the zone): run again",
    "invalid_input": "Hetzner refused a value (named above): correct it",
    "json_error": "the request was malformed: report this as a bug in drape-fleet",
    "resource_limit_exceeded": "the project's limit for this resource is reached: remove unused records/zones",
}
_TRANSIENT = ("maintenance", "service_error", "server_error", "timeout", "bad_gateway", "conflict",
              "resource_unavailable", "unavailable", "robot_unavailable")


_ZONE_MISSING = ("the zone is not in the token's project: create it (Console → DNS → Add zone) or correct the zone "
                 "name, and check the token belongs to that project")


def _explain(exc: APIException, doing: str, *, not_found: str | None = None) -> DnsError:
    code = str(exc.code)
    fix = not_found if code == "not_found" and not_found else _FIXES.get(code)
    if fix is None:
        fix = ("Hetzner's API is failing or busy: run again in a few minutes (https://status.hetzner.com)"
               if code in _TRANSIENT or code.isdigit() else "see Hetzner's message")
    details = ""
    if isinstance(exc.details, dict) and exc.details.get("fields"):
        fields = "; ".join(f"{f.get('name')}: {', '.join(f.get('messages') or [])}".rstrip(": ")
                           for f in exc.details["fields"] if isinstance(f, dict))
        details = f" ({fields})"
    reference = f" [correlation id {exc.correlation_id}]" if exc.correlation_id else ""
    return DnsError(f"Hetzner Cloud DNS: {doing} failed: {exc.message} ({code}){details}{reference}. Fix: {fix}")


class CloudDns:
    """The DNS part of the Cloud API, through one ``hcloud.Client``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, token: str, *, api_endpoint: str = DEFAULT_API_ENDPOINT, timeout_s: float = 30.0) -> CloudDns:
        if not token.strip():
            raise DnsError(f"the Hetzner Cloud token is empty: {_NEW_CREDENTIAL}")
        endpoint = require_secure_endpoint(api_endpoint, default=DEFAULT_API_ENDPOINT)
        return cls(Client(token.strip(), api_endpoint=endpoint, application_name="drape-fleet", timeout=timeout_s))

    @classmethod
    def from_secrets(cls, secrets: Secrets, **options: Any) -> CloudDns:
        """The token is ``hcloud_token`` (env DRAPE_HCLOUD_TOKEN or the secrets file)."""
        return cls.connect(secrets.value("hcloud_token"), **options)

    @classmethod
    def for_fleet(cls, fleet: FleetConfig, secrets: Secrets, **options: Any) -> CloudDns:
        """A client for the fleet file's ``[preview_dns]`` section (its ``api_endpoint``)."""
        if fleet.preview_dns is None:
            raise ConfigError(f"{fleet.environment.name} fleet", [Problem(
                "preview_dns", "this section is missing", 'add [preview_dns] with zone = "your-domain.example"')])
        return cls.from_secrets(secrets, api_endpoint=fleet.preview_dns.api_endpoint, **options)

    @contextmanager
    def _errors(self, doing: str, *, not_found: str | None = None) -> Iterator[None]:
        try:
            yield
        except APIException as exc:
            raise _explain(exc, doing, not_found=not_found) from None
        except ActionFailedException as exc:
            raise DnsError(f"Hetzner Cloud DNS: {doing}: Hetzner reported the change failed ({exc}). Fix: check the "
                           "zone in the Console and run again") from None
        except ActionTimeoutException as exc:
            raise DnsError(f"Hetzner Cloud DNS: {doing}: the change is still running at Hetzner ({exc}). Fix: run "
                           "again in a minute; the plan will show what is left") from None
        except requests.RequestException as exc:
            raise DnsError(f"Hetzner Cloud DNS: {doing}: cannot reach the Cloud API ({type(exc).__name__}: {exc}). "
                           "Fix: check the network (https://status.hetzner.com)") from None

    # -- reading -----------------------------------------------------------------------------------------

    def zone(self, zone: str) -> BoundZone:
        """The zone, checked to be one whose RRSets the API may change."""
        with self._errors(f"reading zone {zone}", not_found=_ZONE_MISSING):
            found = self._client.zones.get(zone)
        if found.mode != "primary":
            raise DnsError(f"Hetzner Cloud DNS: zone {zone} is in {found.mode} mode. "
                           f"Fix: {_FIXES['incorrect_zone_mode']}")
        return found

    def current(self, zone: str, name: str) -> dict[str, RRSetState]:
        """The name's A, AAAA and CNAME RRSets as they are now (a CNAME there forbids the others)."""
        self.zone(zone)
        with self._errors(f"reading {name} in {zone}"):
            rrsets = self._client.zones.get_rrset_all(Zone(name=zone), name=name, type=["A", "AAAA", "CNAME"])
        return {str(r.type): RRSetState(str(r.type), tuple(sorted(rec.value for rec in r.records or [])), r.ttl)
                for r in rrsets if r.name == name and r.type in ("A", "AAAA", "CNAME")}

    def rrsets(self, zone: str) -> list[tuple[str, RRSetState]]:
        """Every RRSet of the zone (all pages), as (name, state)."""
        with self._errors(f"listing the records of {zone}", not_found=_ZONE_MISSING):
            rrsets = self._client.zones.get_rrset_all(Zone(name=zone))
        return [(str(r.name), RRSetState(str(r.type), tuple(rec.value for rec in r.records or []), r.ttl))
                for r in rrsets]

    def plan(self, target: DnsTarget, *, replace_cname: bool = False) -> DnsPlan:
        return plan_changes(target, self.current(target.zone, target.name), replace_cname=replace_cname)

    # -- changing ----------------------------------------------------------------------------------------

    def apply(self, plan: DnsPlan) -> DnsPlan:
        """Make the plan's changes in order, each confirmed by its finished action."""
        zone = Zone(name=plan.zone)
        zones = self._client.zones
        for change in plan.changes:
            rrset = ZoneRRSet(name=plan.name, type=change.type, zone=zone)
            records = [ZoneRecord(value) for value in change.after]
            with self._errors(change.describe(f"{plan.name}.{plan.zone}")):
                action: BoundAction
                if change.action == "create":
                    action = zones.create_rrset(zone, name=plan.name, type=change.type, ttl=change.ttl_after,
                                                records=records).action
                elif change.action == "set_records":
                    action = zones.set_rrset_records(rrset, records)
                elif change.action == "change_ttl":
                    action = zones.change_rrset_ttl(rrset, change.ttl_after)
                else:
                    action = zones.delete_rrset(rrset).action
                action.wait_until_finished()
        return plan

    def point(self, target: DnsTarget, *, apply: bool = False, replace_cname: bool = False) -> DnsPlan:
        """Plan (and with ``apply``, make) the changes that point ``target.name`` at its addresses only."""
        plan = self.plan(target, replace_cname=replace_cname)
        return self.apply(plan) if apply else plan

    def remove(self, zone: str, name: str, *, apply: bool = False) -> DnsPlan:
        """Plan (and with ``apply``, make) the deletion of the name's A and AAAA RRSets."""
        plan = plan_removal(zone, name, self.current(zone, name))
        return self.apply(plan) if apply else plan
