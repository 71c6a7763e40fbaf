"""The preview URLs' DNS: one wildcard RRSet per preview host, ``*.<host>.<domain>`` -> that host's public
addresses, in the Hetzner Cloud DNS zone of ``[preview_dns]`` (through ``drape_fleet.hetzner.cloud_dns``).

Per host, not one name for the fleet: a preview's URL names the host it runs on, so a request goes straight to
it (docs/previews.md, "Preview URL"). Adding a host adds one record; nothing changes when previews start or stop.
"""

from __future__ import annotations

from drape_fleet.config import ConfigError, FleetConfig
from drape_fleet.config.errors import Problem
from drape_fleet.config.previews import IngressSettings
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.hetzner.dns_plan import DnsPlan, DnsTarget


def host_targets(fleet: FleetConfig, settings: IngressSettings) -> list[DnsTarget]:
    """What each preview host's wildcard should resolve to (pure; ``DnsError`` names a bad value)."""
    if fleet.preview_dns is None:
        raise ConfigError(f"{fleet.environment.name} fleet", [Problem(
            "preview_dns", "this section is missing: the preview domain's zone is unknown",
            'add [preview_dns] with zone = "your-domain.example" (the zone the preview domain is in)')])
    zone = fleet.preview_dns.zone
    if settings.domain != zone and not settings.domain.endswith("." + zone):
        raise ConfigError(f"{fleet.environment.name} fleet", [Problem(
            "previews.ingress.domain", f"{settings.domain} is not in the zone {zone}",
            f"use a domain under {zone} (e.g. preview.{zone}), or set [preview_dns] zone to its zone")])
    relative = settings.domain.removesuffix(zone).rstrip(".")
    targets = []
    for host in fleet.hosts:
        if "preview" not in host.roles:
            continue
        name = f"*.{host.name}" + (f".{relative}" if relative else "")
        targets.append(DnsTarget.build(zone, name, [host.public_address], ttl=settings.dns_ttl))
    return targets


def plan_all(dns: CloudDns, targets: list[DnsTarget]) -> list[DnsPlan]:
    """What would change (nothing is touched)."""
    return [dns.plan(target) for target in targets]


def apply_all(dns: CloudDns, plans: list[DnsPlan]) -> list[DnsPlan]:
    return [dns.apply(plan) for plan in plans if plan.changed]
