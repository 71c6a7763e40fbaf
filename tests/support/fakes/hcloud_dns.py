"""A local fake of the Hetzner Cloud API's DNS part (``/v1/zones...``) as a real HTTP server on loopback.

In a test (through the real ``hcloud`` library)::

    with FakeCloudDns() as api:                  # token "hcloud-test-token", read-write
        api.world.add_zone("drape.dev")
        client = hcloud.Client("hcloud-test-token", api_endpoint=api.url)

As a process: ``PYTHONPATH=tests/support python -m fakes.hcloud_dns --zone drape.dev`` (prints
``FAKE_HCLOUD_URL=...``). The rules and their sources are in ``hcloud_dns_state``. Every answer carries the
``RateLimit-*`` headers and an ``X-Correlation-Id``; checks run in the order faults, token, rate limit, route.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import signal
import sys
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from fakes.hcloud_dns_state import TYPES, ApiError, DnsWorld, FakeZone, RateLimited, invalid
from fakes.loopback import FakeHandler, LoopbackServer

DEFAULT_TOKEN = "hcloud-test-token"
_ZONE = r"/v1/zones/(?P<zone>[^/]+)"
_RRSET = _ZONE + r"/rrsets/(?P<name>[^/]+)/(?P<type>[A-Z]+)"
_ROUTES = [(re.compile(f"^{pattern}$"), name) for pattern, name in [
    (r"/v1/zones", "zones"), (r"/v1/zones/actions/(?P<action>[^/]+)", "action"),
    (r"/v1/actions/(?P<action>[^/]+)", "action"), (_ZONE, "zone"),
    (_ZONE + r"/rrsets", "rrsets"), (_RRSET, "rrset"), (_RRSET + r"/actions/(?P<command>[a-z_]+)", "rrset_action"),
]]


def paginate(items: list[Any], query: Mapping[str, list[str]], *, max_per_page: int, url: str
             ) -> tuple[list[Any], dict[str, Any], str]:
    """One page of ``items``, the ``meta.pagination`` object and the ``Link`` header."""
    try:
        page = int(query.get("page", ["1"])[0])
        per_page = min(max_per_page, int(query.get("per_page", ["25"])[0]))
    except ValueError:
        raise invalid("page", "must be a number") from None
    if page < 1 or per_page < 1:
        raise invalid("page" if page < 1 else "per_page", "must be at least 1")
    last = max(1, math.ceil(len(items) / per_page))
    links = {"prev": page - 1 if page > 1 else None, "next": page + 1 if page < last else None, "last": last}
    link = ", ".join(f'<{url}?{urlencode({"page": n, "per_page": per_page})}>; rel="{rel}"'
                     for rel, n in links.items() if n is not None)
    meta = {"pagination": {"page": page, "per_page": per_page, "previous_page": links["prev"],
                           "next_page": links["next"], "last_page": last, "total_entries": len(items)}}
    return items[(page - 1) * per_page:page * per_page], meta, link


class CloudDnsHandler(FakeHandler):
    world: ClassVar[DnsWorld]

    def _handle(self, method: str) -> None:
        raw = self.read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.world.requests.append({"method": method, "path": unquote(url.path), "query": query})
        headers = {"X-Correlation-Id": secrets.token_hex(8)}
        fault = self.world.faults.take(method, unquote(url.path))
        if fault is not None:
            self.reply(fault.status, fault.body, {**headers, **fault.headers})
            return
        try:
            self.world.authorise(self.headers.get("Authorization"), write=method != "GET")
            headers.update(self.world.rate_limit())
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise ApiError("json_error", "Invalid JSON input in your request") from None
            status, answer, extra = self._route(method, unquote(url.path), query, body)
        except RateLimited as exc:
            self.reply(429, exc.error.body(), {**headers, **exc.headers})
            return
        except ApiError as exc:
            self.reply(exc.status, exc.body(), headers)
            return
        self.reply(status, answer, {**headers, **extra})

    def _route(self, method: str, path: str, query: Mapping[str, list[str]], body: Any
               ) -> tuple[int, Any, dict[str, str]]:
        for pattern, route in _ROUTES:
            match = pattern.match(path)
            if match:
                handler = getattr(self, f"{method.lower()}_{route}", None)
                if handler is None:
                    break
                with self.world.lock:
                    answer: tuple[int, Any, dict[str, str]] = handler(query, body, **match.groupdict())
                    return answer
        raise ApiError("not_found", "not found")

    def _base(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    # -- zones ---------------------------------------------------------------------------------------------

    def get_zones(self, query: Mapping[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        zones = [z for z in sorted(self.world.zones.values(), key=lambda z: z.id)
                 if z.name in query.get("name", [z.name]) and z.mode in query.get("mode", [z.mode])]
        page, meta, link = paginate(zones, query, max_per_page=50, url=self._base("/v1/zones"))
        return 200, {"zones": [z.to_api() for z in page], "meta": meta}, {"Link": link} if link else {}

    def post_zones(self, query: Mapping[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        name, mode = body.get("name"), body.get("mode")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", name):
            raise invalid("name", "must be a domain name")
        if mode not in ("primary", "secondary"):
            raise invalid("mode", "must be primary or secondary")
        if any(z.name == name for z in self.world.zones.values()):
            raise ApiError("uniqueness_error", "zone name is already used", {"fields": [{"name": "name"}]})
        self.world.check_ttl(body.get("ttl"))
        zone = self.world.add_zone(name, mode=mode, ttl=body.get("ttl") or 3600)
        return 201, {"zone": zone.to_api(), "action": self.world.action("create_zone", zone)}, {}

    def get_zone(self, query: Mapping[str, list[str]], body: Any, zone: str) -> tuple[int, Any, dict[str, str]]:
        return 200, {"zone": self.world.zone(zone).to_api()}, {}

    def get_action(self, query: Mapping[str, list[str]], body: Any, action: str) -> tuple[int, Any, dict[str, str]]:
        return 200, self.world.get_action(action), {}

    # -- RRSets ---------------------------------------------------------------------------------------------

    def get_rrsets(self, query: Mapping[str, list[str]], body: Any, zone: str) -> tuple[int, Any, dict[str, str]]:
        found = self.world.primary(zone)
        rrsets = [r for key, r in sorted(found.rrsets.items())
                  if r.name in query.get("name", [r.name]) and r.type in query.get("type", [r.type])]
        page, meta, link = paginate(rrsets, query, max_per_page=100, url=self._base(f"/v1/zones/{zone}/rrsets"))
        return 200, {"rrsets": [r.to_api() for r in page], "meta": meta}, {"Link": link} if link else {}

    def post_rrsets(self, query: Mapping[str, list[str]], body: Any, zone: str) -> tuple[int, Any, dict[str, str]]:
        found = self.world.primary(zone)
        name, type_ = body.get("name"), body.get("type")
        if not isinstance(name, str):
            raise invalid("name", "is required")
        self.world.check_name(found, name)
        if type_ not in TYPES:
            raise invalid("type", f"must be one of {', '.join(TYPES)}")
        self.world.check_ttl(body.get("ttl"))
        records = self.world.check_records(type_, body.get("records"))
        if (name, type_) in found.rrsets:
            raise ApiError("uniqueness_error", f"RRSet {name}/{type_} already exists",
                           {"fields": [{"name": "name"}, {"name": "type"}]})
        self.world.add_rrset(found, name, type_, [r["value"] for r in records], body.get("ttl"))
        found.rrsets[(name, type_)].labels = dict(body.get("labels") or {})
        return 201, {"rrset": found.rrsets[(name, type_)].to_api(),
                     "action": self.world.action("create_rrset", found)}, {}

    def get_rrset(self, query: Mapping[str, list[str]], body: Any, zone: str, name: str, type: str
                  ) -> tuple[int, Any, dict[str, str]]:
        return 200, {"rrset": self.world.rrset(self.world.primary(zone), name, type).to_api()}, {}

    def put_rrset(self, query: Mapping[str, list[str]], body: Any, zone: str, name: str, type: str
                  ) -> tuple[int, Any, dict[str, str]]:
        rrset = self.world.rrset(self.world.primary(zone), name, type)
        if "labels" in body:
            rrset.labels = dict(body["labels"] or {})
        return 200, {"rrset": rrset.to_api()}, {}

    def delete_rrset(self, query: Mapping[str, list[str]], body: Any, zone: str, name: str, type: str
                     ) -> tuple[int, Any, dict[str, str]]:
        found = self.world.primary(zone)
        self.world.rrset(found, name, type)
        del found.rrsets[(name, type)]
        return 201, {"action": self.world.action("delete_rrset", found)}, {}

    def post_rrset_action(self, query: Mapping[str, list[str]], body: Any, zone: str, name: str, type: str,
                          command: str) -> tuple[int, Any, dict[str, str]]:
        found = self.world.primary(zone)
        self._rrset_action(found, name, type, command, body)
        return 201, {"action": self.world.action(f"{command}_rrset" if "records" not in command else command,
                                                 found)}, {}

    def _rrset_action(self, zone: FakeZone, name: str, type_: str, command: str, body: Any) -> None:
        world, key = self.world, (name, type_)
        if command == "add_records":  # "the RRSet will be automatically created if it doesn't exist"
            world.check_name(zone, name)
            records = world.check_records(type_, body.get("records"))
            world.check_ttl(body.get("ttl"))
            existing = zone.rrsets.get(key)
            if existing is None:
                world.add_rrset(zone, name, type_, [r["value"] for r in records], body.get("ttl"))
                return
            present = {r["value"] for r in existing.records}
            existing.records += [r for r in records if r["value"] not in present]
            return
        rrset = world.rrset(zone, name, type_)
        if command == "set_records":
            rrset.records = world.check_records(type_, body.get("records"))
        elif command == "remove_records":  # "automatically deleted if it doesn't contain any RRs afterwards"
            gone = {r["value"] for r in world.check_records(type_, body.get("records"))}
            rrset.records = [r for r in rrset.records if r["value"] not in gone]
            if not rrset.records:
                del zone.rrsets[key]
        elif command == "change_ttl":
            if "ttl" not in body:
                raise invalid("ttl", "is required (null for the zone's default)")
            world.check_ttl(body["ttl"])
            rrset.ttl = body["ttl"]
        elif command == "change_protection":
            rrset.protection = {"change": bool(body.get("change", False))}
        else:
            raise ApiError("not_found", "not found")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class FakeCloudDns(LoopbackServer):
    """The fake on a loopback port; ``url`` is hcloud's ``api_endpoint`` (``…/v1``); ``world`` its state."""

    def __init__(self, tokens: Mapping[str, bool] | None = None, *, port: int = 0, **world_options: Any) -> None:
        self.world = DnsWorld(tokens or {DEFAULT_TOKEN: True}, **world_options)
        super().__init__(type("BoundCloudDnsHandler", (CloudDnsHandler,), {"world": self.world}), port=port,
                         name="fake-hcloud-dns")

    def __enter__(self) -> FakeCloudDns:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Hetzner Cloud DNS API on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], help="TOKEN or TOKEN:ro (repeatable)")
    parser.add_argument("--zone", action="append", default=[], help="a primary zone to create (repeatable)")
    args = parser.parse_args(argv)
    tokens = {spec.split(":")[0]: not spec.endswith(":ro") for spec in args.token} or {DEFAULT_TOKEN: True}
    fake = FakeCloudDns(tokens, port=args.port)
    for zone in args.zone:
        fake.world.add_zone(zone)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"FAKE_HCLOUD_URL={fake.url}", flush=True)
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
