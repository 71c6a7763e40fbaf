"""The Hetzner Cloud DNS fake's world: zones, RRSets, actions, tokens, the hourly rate limit. No HTTP here.

Sources: the Cloud API reference (docs.hetzner.cloud, as published in the API's OpenAPI description and its
per-endpoint pages for Zones and Zone RRSets) and hcloud-python's zones client and its test fixtures.

Documented and followed: the error body ``{"error": {"code", "message", "details"}}`` with the general codes
(``unauthorized``, ``forbidden``, ``token_readonly`` for writes with a read-only token, ``not_found``,
``invalid_input`` with ``details.fields``, ``uniqueness_error``, ``rate_limit_exceeded``) and the zone code
``incorrect_zone_mode`` (422, RRSet calls on a secondary zone); pagination (``page`` from 1, ``per_page``
default 25, max 50 and 100 for RRSets, ``meta.pagination`` with previous/next/last page and total, a
``Link`` header); ``RateLimit-Limit``/``-Remaining``/``-Reset`` headers, 3600 requests per hour refilling one
per second, 429 when exhausted; a new zone gets an SOA and three NS records at ``@``; RRSet names lower case,
relative, no trailing dot, ``@`` for the apex; TTL 60..2147483647 or null (zone default); records non-empty
and distinct; ``add_records`` creates a missing RRSet and ``remove_records`` deletes an emptied one; changes
answer an action that is ``running`` and later ``success``.

Inferred: HTTP 201 for creations and action POSTs, 409 for ``uniqueness_error``, the action ``command``
names, A/AAAA values validated as IPv4/IPv6, a ``per_page`` above the maximum being clamped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from fakes.loopback import Faults

TYPES = ("A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV", "SVCB", "TLSA",
         "TXT")
_STATUS = {"unauthorized": 401, "forbidden": 403, "token_readonly": 403, "not_found": 404, "invalid_input": 400,
           "json_error": 400, "uniqueness_error": 409, "incorrect_zone_mode": 422, "rate_limit_exceeded": 429,
           "locked": 423}


class ApiError(Exception):
    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, dict(details or {})
        self.status = _STATUS.get(code, 500)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class RateLimited(Exception):
    def __init__(self, error: ApiError, headers: dict[str, str]) -> None:
        super().__init__(error.message)
        self.error, self.headers = error, headers


def invalid(name: str, message: str) -> ApiError:
    return ApiError("invalid_input", f"invalid input in field '{name}': {message}",
                    {"fields": [{"name": name, "messages": [message]}]})


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class FakeRRSet:
    zone_id: int
    name: str
    type: str
    ttl: int | None
    records: list[dict[str, str]]
    labels: dict[str, str] = field(default_factory=dict)
    protection: dict[str, bool] = field(default_factory=lambda: {"change": False})

    def to_api(self) -> dict[str, Any]:
        return {"zone": self.zone_id, "id": f"{self.name}/{self.type}", "name": self.name, "type": self.type,
                "ttl": self.ttl, "labels": self.labels, "protection": self.protection, "records": self.records}


@dataclass
class FakeZone:
    id: int
    name: str
    mode: str
    ttl: int
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    rrsets: dict[tuple[str, str], FakeRRSet] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        nameservers = ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."]
        return {"id": self.id, "name": self.name, "created": self.created, "mode": self.mode, "ttl": self.ttl,
                "protection": {"delete": False}, "labels": self.labels, "primary_nameservers": [],
                "record_count": sum(len(r.records) for r in self.rrsets.values()), "status": "ok",
                "registrar": "hetzner",
                "authoritative_nameservers": {"assigned": nameservers, "delegated": nameservers,
                                              "delegation_last_check": self.created, "delegation_status": "valid"}}


@dataclass
class FakeAction:
    id: int
    command: str
    zone_id: int
    started: float
    done_at: float

    def to_api(self, now: float) -> dict[str, Any]:
        done = now >= self.done_at
        return {"id": self.id, "command": self.command, "status": "success" if done else "running",
                "progress": 100 if done else 0, "started": _iso(self.started),
                "finished": _iso(self.done_at) if done else None,
                "resources": [{"id": self.zone_id, "type": "zone"}], "error": None}


class DnsWorld:
    def __init__(self, tokens: Mapping[str, bool], *, limit_per_hour: int = 3600, action_s: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.tokens = dict(tokens)  # token -> may write
        self.limit = limit_per_hour
        self.action_s = action_s
        self.clock = clock
        self.zones: dict[int, FakeZone] = {}
        self.actions: dict[int, FakeAction] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults = Faults()
        self.lock = threading.RLock()  # re-entrant: seeding helpers run inside requests too
        self._tokens_left = float(limit_per_hour)
        self._refilled = clock()
        self._ids = iter(range(4711, 10**9))

    # -- seeding -----------------------------------------------------------------------------------------

    def add_zone(self, name: str, *, mode: str = "primary", ttl: int = 3600) -> FakeZone:
        with self.lock:
            zone = FakeZone(next(self._ids), name, mode, ttl, _iso(self.clock()))
            if mode == "primary":
                serial = datetime.now(UTC).strftime("%Y%m%d01")
                zone.rrsets[("@", "SOA")] = FakeRRSet(zone.id, "@", "SOA", None, [{"value": (
                    f"hydrogen.ns.hetzner.com. dns.hetzner.com. {serial} 86400 10800 3600000 3600"), "comment": ""}])
                zone.rrsets[("@", "NS")] = FakeRRSet(zone.id, "@", "NS", None, [
                    {"value": ns, "comment": ""} for ns in
                    ("hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de.")])
            self.zones[zone.id] = zone
            return zone

    def add_rrset(self, zone: FakeZone, name: str, type_: str, values: list[str], ttl: int | None = None) -> None:
        with self.lock:
            zone.rrsets[(name, type_)] = FakeRRSet(zone.id, name, type_, ttl,
                                                   [{"value": v, "comment": ""} for v in values])

    def inject(self, status: int, body: Any = None, *, times: int = 1, method: str | None = None,
               path_contains: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``times`` matching requests with ``status``/``body`` (proxy or server failures)."""
        self.faults.inject(status, body, times=times, method=method, path_contains=path_contains, headers=headers)

    # -- checks every request goes through ---------------------------------------------------------------

    def authorise(self, header: str | None, *, write: bool) -> None:
        token = header[len("Bearer "):] if header and header.startswith("Bearer ") else None
        if token is None or token not in self.tokens:
            raise ApiError("unauthorized", "unable to authenticate")
        if write and not self.tokens[token]:
            raise ApiError("token_readonly", "The token is only allowed to perform GET requests")

    def rate_limit(self) -> dict[str, str]:
        """Take one request from the hourly budget; return the RateLimit-* headers (429 when empty)."""
        with self.lock:
            now = self.clock()
            per_second = self.limit / 3600.0
            self._tokens_left = min(float(self.limit), self._tokens_left + (now - self._refilled) * per_second)
            self._refilled = now
            allowed = self._tokens_left >= 1.0
            if allowed:
                self._tokens_left -= 1.0
            reset = int(now + (self.limit - self._tokens_left) / per_second)
            headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(math.floor(self._tokens_left)),
                       "RateLimit-Reset": str(reset)}
        if not allowed:
            raise RateLimited(ApiError("rate_limit_exceeded", f"limit of {self.limit} requests per hour reached"),
                              headers)
        return headers

    # -- zones ---------------------------------------------------------------------------------------------

    def zone(self, id_or_name: str) -> FakeZone:
        for zone in self.zones.values():
            if str(zone.id) == id_or_name or zone.name == id_or_name:
                return zone
        raise ApiError("not_found", "zone not found")

    def primary(self, id_or_name: str) -> FakeZone:
        zone = self.zone(id_or_name)
        if zone.mode != "primary":
            raise ApiError("incorrect_zone_mode", "This operation is not supported for this Zone's mode.")
        return zone

    def action(self, command: str, zone: FakeZone) -> dict[str, Any]:
        now = self.clock()
        action = FakeAction(next(self._ids), command, zone.id, now, now + self.action_s)
        self.actions[action.id] = action
        data = action.to_api(now)
        data.update(status="running", progress=0, finished=None)  # a change is answered while it runs
        return data

    def get_action(self, action_id: str) -> dict[str, Any]:
        action = self.actions.get(int(action_id)) if action_id.isdigit() else None
        if action is None:
            raise ApiError("not_found", "action not found")
        return {"action": action.to_api(self.clock())}

    # -- RRSets ---------------------------------------------------------------------------------------------

    @staticmethod
    def check_name(zone: FakeZone, name: str) -> None:
        if not name or name != name.lower() or name.endswith(".") or name.endswith(zone.name):
            raise invalid("name", "must be lower case, relative to the zone, without a trailing dot (apex: @)")

    @staticmethod
    def check_ttl(ttl: Any) -> None:
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= 2147483647):
            raise invalid("ttl", "must be in between 60s and 2147483647s")

    @staticmethod
    def check_records(type_: str, records: Any, *, field_name: str = "records") -> list[dict[str, str]]:
        if not isinstance(records, list) or not records:
            raise invalid(field_name, "must not be empty")
        values = [r.get("value") if isinstance(r, dict) else None for r in records]
        if any(not isinstance(v, str) or not v for v in values):
            raise invalid(field_name, "every record needs a value")
        if len(set(values)) != len(values):
            raise invalid(field_name, "must only contain distinct record values")
        for value in values:
            try:
                {"A": IPv4Address, "AAAA": IPv6Address}.get(type_, str)(value)
            except ValueError:
                raise invalid(field_name, f"{value!r} is not a valid {type_} record value") from None
        return [{"value": str(r["value"]), "comment": str(r.get("comment", ""))} for r in records]

    def rrset(self, zone: FakeZone, name: str, type_: str) -> FakeRRSet:
        found = zone.rrsets.get((name, type_))
        if found is None:
            raise ApiError("not_found", "rrset not found")
        return found


