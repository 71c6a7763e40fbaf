"""Phases 4 and 5: every user on Hetzner (Fly machines stopped, previews' DNS on the Hetzner hosts, the capacity
plan consulted), then the optimizations switched on where they exist and reported where they do not; and the
destruction of stopped Fly machines once their grace period is over."""

from __future__ import annotations

from drape_fleet.cutover import dns_side, fly_side
from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session
from drape_fleet.cutover.fleet_checks import SMOKE_USER, engine_checks, engine_states
from drape_fleet.cutover.gates import Check, failed, phase4_gate
from drape_fleet.cutover.loadtest import LOAD_USER
from drape_fleet.cutover.phases_early import fly_check, fresh_salt, policy_step
from drape_fleet.cutover.progress import FlyMachineRecord
from drape_fleet.cutover.steps import Options, Plan, Step, StepFailed
from drape_fleet.fly import FlyError
from drape_fleet.hetzner.dns_plan import DnsError
from drape_fleet.routing.policy import Features
from drape_fleet.shell import CommandFailed
from drape_fleet.ssh import ssh_run

STORE_USAGE_FILE = "/var/lib/drape/pnpm-store-usage"
WARM_STORE_BYTES = 1024 * 1024
"""A store below this holds nothing worth linking from: not warmed."""


def _capacity(ctx: CutoverContext, serving_on_fly: int) -> Check:
    """Will the fleet hold everyone once Fly is off? The plan's model (config/plan.toml) for the previews running
    on both sides now."""
    from drape_fleet.paths import project_root
    from drape_fleet.plan.model import scenario
    from drape_fleet.plan.settings import load_plan

    live = [p for p in ctx.runtime.previews(probe=False) if p.user not in (SMOKE_USER, LOAD_USER)]
    containers = max(1, len(live) + serving_on_fly)
    model = scenario(load_plan(project_root() / "config" / "plan.toml"), containers)
    hosts = len(ctx.preview_hosts)
    value = (f"{len(live)} preview(s) on Hetzner + {serving_on_fly} Fly machine(s) serving = {containers}: the plan "
             f"needs {model.servers} server(s) ({model.per_server} previews each); the fleet has {hosts}")
    fix = (f"add {model.servers - hosts} server(s) now (`invoke plan --containers {containers}` shows the numbers), "
           "provision them, then run phase4 again")
    return Check("capacity for everyone on Hetzner", value, f"<= {hosts} server(s)", model.servers <= hosts, fix)


def _check_fly_access(ctx: CutoverContext, found: fly_side.FlyInventory) -> None:
    """Before ``--apply`` changes anything: may the token change the machines phase 4 stops? (A lease taken and
    given back on each: a read-only token, or a machine someone else holds, is found out here.)"""
    try:
        fly_side.check_write_access(ctx, found)
    except FlyError as exc:
        raise CutoverRefused(f"{exc}\nNothing was changed.") from None
    ctx.say(f"Fly: the token may change all {len(found.serving)} serving machine(s) (a lease on each, given back)")


def _dns_plan_or_refuse(ctx: CutoverContext) -> list[str]:
    try:
        plan = dns_side.plan(ctx)
    except DnsError as exc:
        raise CutoverRefused(str(exc)) from None
    return [change.describe(f"{plan.name}.{plan.zone}") for change in plan.changes]


# -- phase 4 --------------------------------------------------------------------------------------------


def phase4(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    if options.destroy_fly:
        return destroy_plan(ctx, session, options)
    checks = phase4_gate(ctx.metrics(), session.progress, ctx.settings.gate, ctx.clock.now())
    fly, found = fly_check(ctx)
    checks.append(fly)
    if found is not None:
        checks.append(_capacity(ctx, len(found.serving)))
    serving = found.serving if found is not None else []
    dns_changes = _dns_plan_or_refuse(ctx)
    policy = session.policy.model_copy(update={"phase": 4, "salt": fresh_salt(session), "fly_fallback": False,
                                               "internal_users": ctx.settings.internal_users})

    def point_dns() -> str:
        if session.progress.dns_before is None:
            session.commit(progress=session.progress.model_copy(update={"dns_before": dns_side.before(ctx)}),
                           event="DNS: the preview name's records before phase 4 saved")
        plan = ctx.dns.apply(dns_side.plan(ctx))
        return "; ".join(plan.lines())

    def stop() -> str:
        assert found is not None

        def record(item: FlyMachineRecord) -> None:
            kept = tuple(r for r in session.progress.fly_stopped if r.id != item.id)
            session.commit(progress=session.progress.model_copy(update={"fly_stopped": (*kept, item)}),
                           event=f"Fly: stopping {item.app}/{item.id} ({item.name}, was {item.state_before})")

        failures = fly_side.stop_serving(ctx, found, record)
        if failures:
            raise StepFailed(f"{len(failures)} Fly machine(s) could not be stopped:\n  - " + "\n  - ".join(failures)
                             + "\nRun phase4 --apply again: it stops what is left")
        return (f"stopped {len(found.serving)} Fly machine(s); destroy them after {ctx.settings.fly_grace_days:g} "
                "days with `invoke cutover phase4 --destroy-fly`")

    if options.apply and found is not None and not failed(checks):
        _check_fly_access(ctx, found)
    steps = [
        policy_step(session, policy),
        Step("dns", "previews' DNS on the Hetzner hosts (Hetzner Cloud DNS)", dns_changes, point_dns),
        Step("fly-stop", "Fly: the preview machines stopped (kept, not destroyed, for the grace period)",
             [f"stop {m.describe()}" for m in serving], stop),
    ]
    return Plan(4, checks, steps)


def destroy_plan(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    """``phase4 --destroy-fly``: the machines phase 4 stopped, destroyed once the grace period is over and ops
    confirmed by naming the app(s)."""
    progress = session.progress
    if progress.phase < 4 or progress.applying or progress.rolling_back:
        raise CutoverRefused("--destroy-fly comes after phase 4 is done: finish phase 4 first")
    grace = ctx.settings.fly_grace_days
    ready, waiting = fly_side.destroyable(progress.fly_stopped, ctx.clock.now(), grace)
    apps = ",".join(sorted({item.app for item in ready}))
    soonest = min(waiting, key=lambda r: r.stopped) if waiting else None
    if not ready and not waiting:
        return Plan(4, [], [Step("fly-destroy", "Fly: stopped preview machines destroyed for good", [],
                                 notes=["none left: every machine phase 4 stopped is destroyed already"])])
    checks = [Check("Fly machines past the grace period", f"{len(ready)} ready, {len(waiting)} still inside it"
                    + (f" (next in {fly_side.grace_left(soonest, ctx.clock.now(), grace)})" if soonest else ""),
                    "at least one", bool(ready),
                    f"wait: machines are kept {grace:g} days after phase 4 stopped them")]
    if options.apply and ready and options.confirm != apps:
        raise CutoverRefused(f"destroying {len(ready)} Fly machine(s) of {apps} cannot be undone:\n  - "
                             + "\n  - ".join(f"{r.app}/{r.id} ({r.name}), stopped {r.stopped:%Y-%m-%d %H:%M} UTC"
                                             for r in ready)
                             + f"\nConfirm by naming the app(s): --confirm {apps}")

    def run() -> str:
        errors = []
        for item in ready:
            problem = fly_side.destroy(ctx, item)
            if problem:
                errors.append(problem)
                continue
            kept = tuple(r if r.id != item.id else r.model_copy(update={"destroyed": ctx.clock.now()})
                         for r in session.progress.fly_stopped)
            session.commit(progress=session.progress.model_copy(update={"fly_stopped": kept}),
                           event=f"Fly: destroyed {item.app}/{item.id} ({item.name})")
        if errors:
            raise StepFailed("not destroyed:\n  - " + "\n  - ".join(errors))
        return f"destroyed {len(ready)} Fly machine(s)"

    return Plan(4, checks, [Step("fly-destroy", "Fly: stopped preview machines destroyed for good",
                                 [f"DESTROY {r.app}/{r.id} ({r.name})" for r in ready], run)])


# -- phase 5 --------------------------------------------------------------------------------------------


def _store_findings(ctx: CutoverContext) -> list[str]:
    missing = []
    for name in ctx.preview_hosts:
        try:
            result = ssh_run(ctx.target.ssh_target(ctx.fleet.host(name)), f"cat {STORE_USAGE_FILE}", timeout=20)
        except CommandFailed as exc:
            missing.append(f"store warming on {name}: cannot read {STORE_USAGE_FILE} ({str(exc)[-120:].strip()})")
            continue
        values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        used = int(values.get("used", "0") or 0)
        if used < WARM_STORE_BYTES:
            missing.append(f"store warming on {name}: the pnpm store holds {used // 1024} KiB (nothing in "
                           "drape-fleet fills it yet)")
    return missing


def _monitoring_findings(ctx: CutoverContext) -> list[str]:
    """Monitoring and alerting working (``drape_fleet.monitoring.health``: targets up, rules loaded, alerts
    delivered, the watchdog firing), or what is not."""
    from drape_fleet.monitoring.health import check
    from drape_fleet.monitoring.plan import MonitoringRefused

    try:
        health = check(ctx.target)
    except MonitoringRefused as exc:
        return [f"monitoring and alerting: {str(exc).splitlines()[0]} (then `invoke provision --all`)"]
    if health.ok:
        ctx.say(f"monitoring on {health.server}: " + "; ".join(f"{c.name} ok" for c in health.checks))
        return []
    return [f"monitoring on {health.server}: {c.name}: {c.detail}" for c in health.failed()]


def phase5(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    states = engine_states(ctx, sorted(ctx.fleet.runtime.frameworks))
    checks = engine_checks(states, images=False)
    fly, found = fly_check(ctx)
    checks.append(fly)
    if found is not None:
        checks.append(Check("Fly preview machines serving", str(len(found.serving)), "none (phase 4 stopped them)",
                            not found.serving, "run `invoke cutover phase4 --apply` again"))
    dns_changes = _dns_plan_or_refuse(ctx)
    checks.append(Check("previews' DNS", "points at the Hetzner hosts" if not dns_changes else "; ".join(dns_changes),
                        "the Hetzner hosts", not dns_changes, "run `invoke cutover phase4 --apply` again"))
    missing = [f"template {image} on {host}" for host, state in states.items() for image in state.missing_images]
    missing += _store_findings(ctx) + _monitoring_findings(ctx)
    features = Features(prewarm=True, keep_alive=True)
    policy = session.policy.model_copy(update={"phase": 5, "salt": fresh_salt(session), "fly_fallback": False,
                                               "internal_users": ctx.settings.internal_users, "features": features})

    def record() -> str:
        session.commit(progress=session.progress.model_copy(update={"missing": tuple(missing)}),
                       event="phase 5: missing " + ("; ".join(missing) if missing else "nothing"))
        return f"{len(missing)} item(s) missing (reported, not faked)" if missing else "nothing missing"

    steps = [
        Step("templates", "templates for every framework on every host",
             [], notes=["present everywhere" if not any(s.missing_images for s in states.values()) else
                        "missing: " + ", ".join(m for m in missing if m.startswith("template"))]),
        policy_step(session, policy),
        Step("missing", "what does not exist yet, reported (not faked)", missing or ["(nothing missing)"], record),
    ]
    return Plan(5, checks, steps)
