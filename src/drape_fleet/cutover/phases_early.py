"""Phases 1 to 3: the fleet confirmed (provisioned, verified, templates on it), internal users on Hetzner with a
smoke preview on every host, then beta users (allowlist + sticky share) with Fly as fallback and a load test."""

from __future__ import annotations

import secrets

from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session, known_users
from drape_fleet.cutover.fleet_checks import engine_checks, engine_states, link_checks, smoke_previews
from drape_fleet.cutover.fly_side import FlyInventory, inventory
from drape_fleet.cutover.gates import Check, load_test_check
from drape_fleet.cutover.loadtest import run_load_test
from drape_fleet.cutover.progress import VerifyResult
from drape_fleet.cutover.steps import Options, Plan, Step, StepFailed
from drape_fleet.fly import FlyError
from drape_fleet.routing.metrics import StartRecorder
from drape_fleet.routing.policy import USER_RE, RoutingPolicy

# -- what the phases share -----------------------------------------------------------------------------


def _users(users: tuple[str, ...]) -> str:
    shown = ", ".join(users[:5])
    return f"{shown}{f' and {len(users) - 5} more' if len(users) > 5 else ''}" if users else "none"


def policy_changes(before: RoutingPolicy, after: RoutingPolicy) -> list[str]:
    """What a new policy changes, one line per field (empty: the same policy)."""
    lines = []
    if before.phase != after.phase:
        lines.append(f"phase {before.phase} -> {after.phase}: {after.describe()}")
    for field, label in (("internal_users", "internal users"), ("allowlist", "allowlist")):
        old, new = getattr(before, field), getattr(after, field)
        if old != new:
            added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            lines.append(f"{label}: +{len(added)} ({_users(tuple(added))}), -{len(removed)} ({_users(tuple(removed))})")
    if before.percent != after.percent:
        lines.append(f"sticky share on Hetzner: {before.percent:g}% -> {after.percent:g}%")
    if before.fly_fallback != after.fly_fallback:
        lines.append(f"Hetzner failures fall back to Fly: {before.fly_fallback} -> {after.fly_fallback}")
    if before.features != after.features:
        lines.append(f"features: {before.features.model_dump()} -> {after.features.model_dump()}")
    if before.salt != after.salt and before.salt:
        lines.append("the sticky-share salt changes (users would move between sides)")
    elif not before.salt and after.salt:
        lines.append("a salt for the sticky share is made (kept by every later policy)")
    return lines


def policy_step(session: Session, policy: RoutingPolicy) -> Step:
    """Write ``policy``: every backend process and service instance takes it within ``policy_poll_s``."""
    def run() -> str:
        session.commit(policy=policy, event=f"routing policy: {policy.describe()}")
        return f"routing policy generation {session.generation}: {policy.describe()}"

    changes = policy_changes(session.policy, policy)
    return Step("policy", "the routing policy backends read", changes, run if changes else None)


def fly_check(ctx: CutoverContext) -> tuple[Check, FlyInventory | None]:
    """Does Fly's API answer with our token, and are the preview machines in states the cutover can act on?"""
    try:
        found = inventory(ctx)
    except FlyError as exc:
        return Check("Fly preview machines", f"cannot list them: {exc}", "listed", False), None
    problems = found.unexpected()
    counts = ", ".join(f"{n} {state}" for state, n in found.by_state().items()) or "none"
    if problems:
        return Check("Fly preview machines", f"{counts}; unexpected: " + "; ".join(problems), "started/stopped/"
                     "suspended only", False, "settle or remove those machines, then run again"), found
    return Check("Fly preview machines", counts, "listed, settled", True), found


def fresh_salt(session: Session) -> str:
    return session.policy.salt or secrets.token_hex(8)


# -- phase 1 --------------------------------------------------------------------------------------------


def phase1(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    checks = engine_checks(engine_states(ctx), images=True)
    if not ctx.preview_hosts:
        checks.append(Check("preview hosts in the fleet file", "none", "at least one", False,
                            'give the first server roles = ["preview", "canary"]'))
    steps = [_verify_step(ctx, session, options),
             policy_step(session, RoutingPolicy(phase=1, salt=fresh_salt(session)))]
    return Plan(1, checks, steps)


def _verify_step(ctx: CutoverContext, session: Session, options: Options) -> Step:
    hosts = [ctx.fleet.host(name) for name in ctx.preview_hosts]
    done = session.progress.verify
    title = "the hosts checked from outside (`invoke verify`: tests/host over SSH)"
    if not ctx.settings.verify:
        return Step("verify", title, [], notes=["skipped: [cutover] verify = false (the hosts are verified elsewhere)"])
    if done is not None and done.passed and not options.reverify and set(done.hosts) >= set(ctx.preview_hosts):
        return Step("verify", title, [], notes=[f"passed at {done.at:%Y-%m-%d %H:%M} UTC (--reverify runs it again)"])

    def run() -> str:
        from drape_fleet.provision.verify import run_verify

        outcome = run_verify(ctx.target, hosts, stream=False)
        result = VerifyResult(at=ctx.clock.now(), hosts=tuple(ctx.preview_hosts), passed=outcome.ok,
                              detail=outcome.output.strip().splitlines()[-1][:200] if outcome.output.strip() else "")
        session.commit(progress=session.progress.model_copy(update={"verify": result}),
                       event=f"invoke verify: {'passed' if outcome.ok else 'FAILED'} ({result.detail})")
        if not outcome.ok:
            raise StepFailed(f"`invoke verify` failed on {', '.join(ctx.preview_hosts)}:\n{outcome.output[-3000:]}\n"
                             "Fix the hosts (`invoke provision`), then run phase1 again")
        return f"verified: {result.detail}"

    return Step("verify", title, [f"run invoke verify on {', '.join(ctx.preview_hosts)}"], run)


# -- phase 2 --------------------------------------------------------------------------------------------


def phase2(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    checks = engine_checks(engine_states(ctx), images=True, health=True)
    verify = session.progress.verify
    if ctx.settings.verify:
        checks.append(Check("invoke verify (phase 1)", "not run" if verify is None else
                            f"{'passed' if verify.passed else 'FAILED'} at {verify.at:%Y-%m-%d %H:%M} UTC", "passed",
                            verify is not None and verify.passed, "run `invoke cutover phase1 --reverify --apply`"))
    internal = ctx.settings.internal_users
    checks.append(Check("internal users ([cutover] internal_users)", _users(internal), "at least one",
                        bool(internal), "list Drape's own accounts there"))
    checks += link_checks(ctx)
    framework = ctx.settings.smoke.framework

    def smoke() -> str:
        result = smoke_previews(ctx, ctx.preview_hosts)
        session.commit(progress=session.progress.model_copy(update={"smoke": result}),
                       event=f"smoke previews: {'passed' if result.passed else 'FAILED'}")
        if not result.passed:
            raise StepFailed("the smoke preview failed on " + "; ".join(f"{h}: {e}" for h, e in result.errors.items()))
        return "smoke previews ready and removed: " + ", ".join(f"{h} {s:.1f} s" for h, s in result.seconds.items())

    steps = [Step("smoke", "a preview started to ready and torn down on every host",
                  [f"start a {framework} preview on {host}, wait for ready, remove it" for host in ctx.preview_hosts],
                  smoke),
             policy_step(session, RoutingPolicy(phase=2, salt=fresh_salt(session), internal_users=internal))]
    return Plan(2, checks, steps)


# -- phase 3 --------------------------------------------------------------------------------------------


def check_phase3_options(ctx: CutoverContext, options: Options) -> None:
    """``--percent`` and ``--allow`` checked before any host is read (bad input is refused first, whatever the
    state): a share from 0 to 100 in steps of 0.01, user ids in the runtime's syntax, each one a known user."""
    percent = options.percent
    if percent is not None and (not 0 <= percent <= 100 or round(percent * 100) != percent * 100):
        raise CutoverRefused(f"--percent {percent:g} is not a share of users: pass a number from 0 to 100 (at most "
                             "two decimals), e.g. --percent 10")
    if not options.allow:
        return
    bad = [user for user in options.allow if not USER_RE.fullmatch(user)]
    if bad:
        raise CutoverRefused(f"--allow names {', '.join(map(repr, bad))}, which are not user ids: pass the backend's "
                             "user ids, comma-separated")
    known = known_users(ctx.fleet_file, ctx.settings)
    if known is None:
        raise CutoverRefused("--allow needs [cutover] users_file (the backend's user ids, one a line) to check the "
                             "names against: add it to the fleet file")
    unknown = list(dict.fromkeys(user for user in options.allow if user not in known))
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise CutoverRefused(f"--allow names {len(unknown)} unknown user(s): {', '.join(unknown[:10])}{more}. Nothing "
                             f"was changed. Fix: correct the ids, or add them to {ctx.settings.users_file}")


def phase3_policy(ctx: CutoverContext, session: Session, options: Options) -> RoutingPolicy:
    """The allowlist and share asked for (checked), or the ones in force when not given."""
    check_phase3_options(ctx, options)
    current = session.policy if session.policy.phase == 3 else RoutingPolicy()
    percent = current.percent if options.percent is None else options.percent
    allow = current.allowlist if options.allow is None else tuple(dict.fromkeys(options.allow))
    return RoutingPolicy(phase=3, salt=fresh_salt(session), internal_users=ctx.settings.internal_users,
                         allowlist=allow, percent=percent, fly_fallback=True)


def phase3(ctx: CutoverContext, session: Session, options: Options) -> Plan:
    policy = phase3_policy(ctx, session, options)
    checks = engine_checks(engine_states(ctx), images=False)
    smoke = session.progress.smoke
    checks.append(Check("smoke previews (phase 2)", "not run" if smoke is None else
                        ("passed on " + ", ".join(sorted(smoke.seconds)) if smoke.passed else
                         "FAILED: " + "; ".join(f"{h}: {e}" for h, e in smoke.errors.items())),
                        "passed on every preview host", smoke is not None and smoke.passed
                        and set(smoke.seconds) >= set(ctx.preview_hosts), "run `invoke cutover phase2 --apply`"))
    checks.append(fly_check(ctx)[0])
    steps = [policy_step(session, policy), _load_test_step(ctx, session, options)]
    return Plan(3, checks, steps)


def _load_test_step(ctx: CutoverContext, session: Session, options: Options) -> Step:
    settings = ctx.settings.load_test
    title = "the load test: concurrent previews through the runtime"
    recorded = load_test_check(session.progress, ctx.settings.gate, ctx.clock.now())
    if recorded.ok and not options.load_test:
        return Step("load-test", title, [], notes=[f"kept: {recorded.value} (--load-test runs it again)"])

    def run() -> str:
        recorder = StartRecorder()
        result = run_load_test(ctx.runtime, settings, recorder, phase=3, say=ctx.say, clock=ctx.clock)
        recorder.flush(ctx.metrics_store, force=True)
        session.commit(progress=session.progress.model_copy(update={"load_test": result}),
                       event=f"load test {'passed' if result.passed else 'FAILED'}: {result.detail}")
        if not result.passed:
            raise StepFailed(f"the load test failed: {result.detail}")
        return f"load test passed: {result.detail}"

    return Step("load-test", title, [f"start {settings.previews} {settings.framework} previews at once, "
                                     f"{settings.rounds} round(s) (cold, warm, hot), then remove them"], run)
