"""What the preview domain (e.g. ``*.preview.drape.dev``) should point at, and the changes that gets it
there: pure data and builders, no I/O (``cloud_dns`` reads and applies them through hcloud).

Rules from the Cloud API reference (Zone RRSets): names are relative to the zone, lower case, without a
trailing dot (``@`` is the apex); TTL 60..2147483647 s or unset for the zone's default; records must not be
empty and must be distinct; only zones in primary mode accept RRSet changes (``incorrect_zone_mode``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.models import FleetConfig

DEFAULT_TTL = 300
TTL_RANGE = (60, 2_147_483_647)
RecordType = Literal["A", "AAAA", "CNAME"]
_LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)"
_NAME_RE = re.compile(rf"^(?:@|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\*)$")
_ZONE_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


class DnsError(RuntimeError):
    """A DNS change that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class DnsTarget:
    """``name`` in ``zone`` should resolve to ``addresses`` (A for IPv4, AAAA for IPv6)."""

    zone: str
    name: str
    addresses: tuple[IPv4Address | IPv6Address, ...]
    ttl: int | None = DEFAULT_TTL

    @classmethod
    def build(cls, zone: str, name: str, addresses: Iterable[str | IPv4Address | IPv6Address],
              ttl: int | None = DEFAULT_TTL) -> DnsTarget:
        """Validate everything before any request; ``DnsError`` names the bad value and the fix."""
        zone = zone.strip().rstrip(".").lower()
        if not _ZONE_RE.fullmatch(zone):
            raise DnsError(f"zone {zone!r} is not a domain name: write it like drape.dev")
        name = name.strip()
        if name.endswith(".") or name.endswith(zone) or name != name.lower() or not _NAME_RE.fullmatch(name):
            raise DnsError(f"record name {name!r} is not usable in zone {zone}: write it relative to the zone, in "
                           "lower case, without a trailing dot (e.g. *.preview, or @ for the zone itself)")
        parsed: list[IPv4Address | IPv6Address] = []
        for value in addresses:
            try:
                parsed.append(ip_address(str(value)))
            except ValueError:
                raise DnsError(f"{value!r} is not an IP address: list the hosts' public addresses") from None
        if not parsed:
            raise DnsError(f"no addresses for {name}.{zone}: name at least one host's public address")
        bad = [str(a) for a in parsed
               if a.is_loopback or a.is_link_local or a.is_multicast or a.is_unspecified or a.is_reserved]
        if bad:
            raise DnsError(f"{', '.join(bad)} cannot be published (loopback, link-local, multicast or reserved)")
        if ttl is not None and not TTL_RANGE[0] <= ttl <= TTL_RANGE[1]:
            raise DnsError(f"TTL {ttl} is out of range: use {TTL_RANGE[0]} to {TTL_RANGE[1]} seconds, or none for "
                           "the zone's default")
        return cls(zone, name, tuple(sorted(set(parsed), key=lambda a: (a.version, int(a)))), ttl)

    def wanted(self) -> dict[RecordType, tuple[str, ...]]:
        return {"A": tuple(str(a) for a in self.addresses if a.version == 4),
                "AAAA": tuple(str(a) for a in self.addresses if a.version == 6)}

    @property
    def fqdn(self) -> str:
        return self.zone if self.name == "@" else f"{self.name}.{self.zone}"


@dataclass(frozen=True)
class RRSetState:
    """One RRSet as it is now."""

    type: str
    values: tuple[str, ...]
    ttl: int | None


@dataclass(frozen=True)
class DnsChange:
    action: Literal["create", "set_records", "change_ttl", "delete"]
    type: RecordType
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    ttl_before: int | None = None
    ttl_after: int | None = None

    def describe(self, name: str) -> str:
        rrset = f"{name} {self.type}"
        if self.action == "create":
            return f"create {rrset} -> {', '.join(self.after)} (TTL {_ttl(self.ttl_after)})"
        if self.action == "set_records":
            return f"replace {rrset}: {', '.join(self.before)} -> {', '.join(self.after)}"
        if self.action == "change_ttl":
            return f"change {rrset} TTL {_ttl(self.ttl_before)} -> {_ttl(self.ttl_after)}"
        return f"delete {rrset} ({', '.join(self.before)})"


def _ttl(ttl: int | None) -> str:
    return "zone default" if ttl is None else f"{ttl}s"


@dataclass(frozen=True)
class DnsPlan:
    zone: str
    name: str
    changes: tuple[DnsChange, ...]
    unchanged: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        if not self.changes:
            return [f"{self.name}.{self.zone}: no change ({'; '.join(self.unchanged) or 'nothing to remove'})"]
        return [change.describe(f"{self.name}.{self.zone}") for change in self.changes]


def plan_changes(target: DnsTarget, current: Mapping[str, RRSetState], *, replace_cname: bool = False) -> DnsPlan:
    """What must change so ``target.name`` resolves to exactly ``target.addresses`` (pure).

    A CNAME on the name (previews pointed at Fly, say) forbids other records: it is replaced only when
    asked (``replace_cname``), deleted first, so the name resolves to nothing for the seconds in between."""
    changes: list[DnsChange] = []
    if "CNAME" in current:
        cname = current["CNAME"]
        if not replace_cname:
            raise DnsError(f"{target.fqdn} is a CNAME to {', '.join(cname.values)}: a name with a CNAME can have no "
                           "other records. Fix: pass replace_cname (the cutover's --replace-cname) to replace it, or "
                           "delete it in the Console, then run again")
        changes.append(DnsChange("delete", "CNAME", before=cname.values, ttl_before=cname.ttl))
        current = {kind: state for kind, state in current.items() if kind != "CNAME"}
    unchanged: list[str] = []
    wanted: dict[RecordType, tuple[str, ...]] = dict(target.wanted())
    for kind, values in wanted.items():
        now = current.get(kind)
        if not values:
            if now is not None:
                changes.append(DnsChange("delete", kind, before=now.values, ttl_before=now.ttl))
            continue
        if now is None:
            changes.append(DnsChange("create", kind, after=values, ttl_after=target.ttl))
            continue
        if tuple(sorted(now.values)) != tuple(sorted(values)):
            changes.append(DnsChange("set_records", kind, before=tuple(sorted(now.values)), after=values))
        if now.ttl != target.ttl:
            changes.append(DnsChange("change_ttl", kind, ttl_before=now.ttl, ttl_after=target.ttl))
        if tuple(sorted(now.values)) == tuple(sorted(values)) and now.ttl == target.ttl:
            unchanged.append(f"{kind} {', '.join(values)}")
    return DnsPlan(target.zone, target.name, tuple(changes), tuple(unchanged))


def plan_removal(zone: str, name: str, current: Mapping[str, RRSetState]) -> DnsPlan:
    """Delete the name's A and AAAA RRSets (pure)."""
    kinds: tuple[RecordType, ...] = ("A", "AAAA")
    changes = tuple(DnsChange("delete", kind, before=current[kind].values, ttl_before=current[kind].ttl)
                    for kind in kinds if kind in current)
    return DnsPlan(zone, name, changes)


def preview_target(fleet: FleetConfig, addresses: Iterable[str] | None = None) -> DnsTarget:
    """The fleet file's ``[preview_dns]`` name pointed at ``addresses`` (default: the preview hosts' public
    addresses)."""
    settings = fleet.preview_dns
    if settings is None:
        raise ConfigError(f"{fleet.environment.name} fleet", [Problem(
            "preview_dns", "this section is missing", 'add [preview_dns] with zone = "your-domain.example"')])
    chosen = list(addresses) if addresses is not None else [
        str(host.public_address) for host in fleet.hosts if "preview" in host.roles]
    return DnsTarget.build(settings.zone, settings.name, chosen, ttl=settings.ttl)
