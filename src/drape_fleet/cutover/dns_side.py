"""Phase 4's DNS change through ``drape_fleet.hetzner.cloud_dns``: the preview name (``[preview_dns]``, e.g.
``*.preview.drape.dev``) pointed at the preview hosts' public addresses, its records before the change kept in
the cutover's progress, and put back by a rollback."""

from __future__ import annotations

from drape_fleet.cutover.context import CutoverContext, CutoverRefused
from drape_fleet.cutover.progress import DnsBefore, DnsRecordSet
from drape_fleet.hetzner.dns_plan import DnsChange, DnsPlan, DnsTarget, RecordType, preview_target


def target(ctx: CutoverContext) -> DnsTarget:
    if ctx.fleet.preview_dns is None:
        raise CutoverRefused("the fleet file has no [preview_dns] section: add one naming the zone, e.g. "
                             '[preview_dns] zone = "drape.dev"')
    return preview_target(ctx.fleet)


def plan(ctx: CutoverContext) -> DnsPlan:
    """What must change so previews resolve to the Hetzner hosts (a CNAME to Fly is replaced)."""
    return ctx.dns.plan(target(ctx), replace_cname=True)


def before(ctx: CutoverContext) -> DnsBefore:
    wanted = target(ctx)
    current = ctx.dns.current(wanted.zone, wanted.name)
    return DnsBefore(zone=wanted.zone, name=wanted.name,
                     records=tuple(DnsRecordSet(type=kind, values=state.values, ttl=state.ttl)
                                   for kind, state in sorted(current.items())))


def restore_plan(ctx: CutoverContext, saved: DnsBefore) -> DnsPlan:
    """The changes that give the name back the records it had before phase 4 (deletions first: a CNAME cannot
    sit beside other records)."""
    current = ctx.dns.current(saved.zone, saved.name)
    wanted = {record.type: record for record in saved.records}
    deletes: list[DnsChange] = []
    creates: list[DnsChange] = []
    for kind, state in sorted(current.items()):
        if kind not in wanted:
            deletes.append(DnsChange("delete", _kind(kind), before=state.values, ttl_before=state.ttl))
        elif tuple(sorted(state.values)) != tuple(sorted(wanted[kind].values)) or state.ttl != wanted[kind].ttl:
            deletes.append(DnsChange("delete", _kind(kind), before=state.values, ttl_before=state.ttl))
            creates.append(DnsChange("create", _kind(kind), after=wanted[kind].values, ttl_after=wanted[kind].ttl))
    for kind, record in sorted(wanted.items()):
        if kind not in current:
            creates.append(DnsChange("create", _kind(kind), after=record.values, ttl_after=record.ttl))
    return DnsPlan(saved.zone, saved.name, tuple(deletes + creates))


def _kind(kind: str) -> RecordType:
    if kind not in ("A", "AAAA", "CNAME"):
        raise CutoverRefused(f"the preview name has a {kind} record the cutover does not manage: remove it by hand")
    return kind  # type: ignore[return-value]
