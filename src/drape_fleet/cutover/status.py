"""``invoke cutover status`` as data: the phase, the gate into the next one (each check and its value), the
routing split (the policy and the starts measured on each side), Fly vs Hetzner counts, and the state store on
every host. Each part that cannot be read says why instead of failing the whole status."""

from __future__ import annotations

from typing import Any

from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session
from drape_fleet.cutover.fly_side import inventory
from drape_fleet.cutover.progress import PHASE_NAMES, phase_status
from drape_fleet.cutover.runner import PHASES
from drape_fleet.cutover.steps import Options
from drape_fleet.fly import FlyError
from drape_fleet.hetzner.dns_plan import DnsError
from drape_fleet.routing.metrics import StartMetrics
from drape_fleet.routing.policy import LAST_PHASE, PROVIDERS
from drape_fleet.runtime.errors import RuntimeFailure

_EXPECTED_ERRORS = (CutoverRefused, FlyError, DnsError, RuntimeFailure, OSError, ValueError)


def _split(metrics: StartMetrics, phase: int) -> dict[str, Any]:
    split: dict[str, Any] = {}
    for provider in PROVIDERS:
        series = metrics.select(phase=phase, provider=provider)
        split[provider] = {"starts": series.attempts, "failed": series.failed,
                           "p95_s": None if series.quantile(0.95) is None else round(series.quantile(0.95) or 0, 1)}
    split["fallbacks"] = metrics.fallbacks.get(phase, 0)
    total = sum(split[p]["starts"] for p in PROVIDERS)
    split["hetzner_share_percent"] = None if total == 0 else round(100 * split["hetzner"]["starts"] / total, 1)
    return split


def status_data(ctx: CutoverContext) -> dict[str, Any]:
    session = Session.open(ctx, need_quorum=False)
    progress, policy = session.progress, session.policy
    data: dict[str, Any] = {
        "phase": progress.phase, "phase_name": PHASE_NAMES[progress.phase], "applying": progress.applying,
        "steps_done": list(progress.steps_done), "rolling_back": progress.rolling_back,
        "phases": {n: phase_status(progress, n) for n in range(1, LAST_PHASE + 1)},
        "policy": {"generation": session.generation, "phase": policy.phase, "describe": policy.describe(),
                   "internal_users": len(policy.internal_users), "allowlist": len(policy.allowlist),
                   "percent": policy.percent, "fly_fallback": policy.fly_fallback,
                   "features": policy.features.model_dump()},
        "store": {"generations": session.view.host_generations(), "behind": session.view.behind,
                  "unreachable": session.view.unreachable, "divergent": session.view.divergent,
                  "damaged": {h: list(c.damaged) for h, c in session.view.copies.items() if c.damaged},
                  "writer": session.record.writer if session.record else None},
        "missing": list(progress.missing),
        "events": [{"at": e.at.isoformat(), "by": e.by, "text": e.text} for e in progress.events[-8:]],
    }
    try:
        data["split"] = _split(ctx.metrics(), policy.phase)
    except _EXPECTED_ERRORS as exc:
        data["split"] = {"error": str(exc)}
    try:
        previews = ctx.runtime.previews(probe=False)
        data["hetzner"] = {"previews": len(previews),
                           "by_host": {h: sum(1 for p in previews if p.host == h) for h in ctx.preview_hosts}}
    except _EXPECTED_ERRORS as exc:
        data["hetzner"] = {"error": str(exc)}
    if ctx.fleet.fly is not None:
        try:
            found = inventory(ctx)
            data["fly"] = {"machines": len(found.machines), "by_state": found.by_state(),
                           "stopped_by_cutover": len([r for r in progress.fly_stopped if r.destroyed is None]),
                           "destroyed_by_cutover": len([r for r in progress.fly_stopped if r.destroyed])}
        except _EXPECTED_ERRORS as exc:
            data["fly"] = {"error": str(exc)}
    next_phase = progress.applying or (progress.phase + 1 if progress.phase < LAST_PHASE else None)
    data["next_phase"] = next_phase
    if next_phase is not None and progress.rolling_back is None:
        try:
            plan = PHASES[next_phase](ctx, session, Options())
            data["gate"] = [{"check": c.name, "value": c.value, "limit": c.limit, "ok": c.ok, "fix": c.fix}
                            for c in plan.checks]
        except _EXPECTED_ERRORS as exc:
            data["gate"] = [{"check": "the gate", "value": f"cannot be evaluated: {exc}", "limit": "evaluated",
                             "ok": False, "fix": ""}]
    return data
