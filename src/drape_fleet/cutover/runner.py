"""Running a phase, and rolling one back: order, gate, plan, then (with ``--apply``) the steps, each recorded.

* Order: phase N runs when phase N-1 is done (or N itself: a re-run), never while another phase is half-applied
  or half-rolled-back.
* The gate is evaluated on every run, dry or not, and a failing gate refuses with each failed check and its value.
* ``--apply`` marks the phase "applying" in the store first, then records each step as it finishes: an
  interrupted run leaves that mark, and the next run of the same phase carries on from the first unfinished step
  (steps also read before they act, so nothing is done twice).
* A rollback takes the last phase (done or half-applied) back to the one before, putting back what that phase
  replaced: the Fly machines it stopped (if not destroyed), the DNS records, the routing policy. Previews on
  Hetzner keep running: the router keeps a workspace whose preview runs there until it retires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drape_fleet.cutover import dns_side, fly_side
from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session
from drape_fleet.cutover.phases_early import check_phase3_options, phase1, phase2, phase3, policy_step
from drape_fleet.cutover.phases_late import phase4, phase5
from drape_fleet.cutover.progress import PHASE_NAMES, PhaseEntry
from drape_fleet.cutover.steps import GateFailed, Options, Plan, PlanBuilder, Step, StepFailed
from drape_fleet.routing.policy import RoutingPolicy

PHASES: dict[int, PlanBuilder] = {1: phase1, 2: phase2, 3: phase3, 4: phase4, 5: phase5}
Show = Callable[[Plan, str], None]
"""How a task shows a plan (its gate and steps) under a title."""


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    applied: bool
    summaries: list[str]
    missing: tuple[str, ...] = ()


def check_order(session: Session, number: int) -> None:
    progress = session.progress
    if progress.rolling_back is not None:
        raise CutoverRefused(f"the rollback of phase {progress.rolling_back} did not finish: run `invoke cutover "
                             "rollback --apply` again first")
    if progress.applying is not None and progress.applying != number:
        raise CutoverRefused(f"phase {progress.applying} was started and did not finish (done: "
                             f"{', '.join(progress.steps_done) or 'no step'}): run `invoke cutover phase"
                             f"{progress.applying} --apply` again to finish it, or `invoke cutover rollback --apply`")
    if number > progress.phase + 1:
        raise CutoverRefused(f"phase {number} is out of order: the last phase done is {progress.phase} "
                             f"({PHASE_NAMES[progress.phase]}); run `invoke cutover phase{progress.phase + 1}` first")
    if number < progress.phase:
        raise CutoverRefused(f"phase {progress.phase} ({PHASE_NAMES[progress.phase]}) is done already; phase {number} "
                             "is behind us. To go back a phase: `invoke cutover rollback`")


def run_phase(ctx: CutoverContext, number: int, options: Options, show: Show) -> Outcome:
    if number == 3:
        check_phase3_options(ctx, options)
    session = Session.open(ctx, need_quorum=options.apply)
    if not options.destroy_fly:  # destroying Fly machines belongs to phase 4 and may come any time after it
        check_order(session, number)
    plan = PHASES[number](ctx, session, options)
    resuming = session.progress.applying == number
    if resuming:
        for step in plan.steps:
            if step.name in session.progress.steps_done:
                step.changes, step.run = [], None
                step.notes.append("done before the interruption")
    title = (f"phase {number}: {PHASE_NAMES[number]}" if not options.destroy_fly else
             "phase 4, after the grace period: destroying the Fly machines phase 4 stopped")
    title += " (resuming an interrupted run)" if resuming else ""
    show(plan, title)
    if plan.gate_failed:
        raise GateFailed(number, plan.gate_failed)
    if not options.apply:
        return Outcome(plan, False, [])
    first_time = session.progress.phase < number
    if first_time and not resuming:
        session.commit(progress=session.progress.model_copy(update={"applying": number, "steps_done": ()}),
                       event=f"phase {number} --apply started")
    summaries = []
    for step in plan.steps:
        if step.run is None or not step.changes:
            continue
        ctx.say(f"{step.name}: {step.title}")
        summary = step.run()
        summaries.append(f"{step.name}: {summary}")
        ctx.say(summary)
        if first_time:
            session.commit(progress=session.progress.model_copy(
                update={"steps_done": (*session.progress.steps_done, step.name)}))
    _finish(session, number, first_time, options)
    return Outcome(plan, True, summaries, session.progress.missing if number == 5 else ())


def _finish(session: Session, number: int, first_time: bool, options: Options) -> None:
    progress = session.progress
    if options.destroy_fly:
        return
    entries = tuple(e for e in progress.entered if e.phase < number)
    entry = PhaseEntry(phase=number, policy=session.policy, completed=session.ctx.clock.now())
    update = {"phase": number, "applying": None, "steps_done": (), "entered": (*entries, entry)}
    verb = "done" if first_time else "run again"
    session.commit(progress=progress.model_copy(update=update), event=f"phase {number} {verb}")


# -- rollback ---------------------------------------------------------------------------------------------


def _undoing(session: Session) -> int:
    progress = session.progress
    phase = progress.rolling_back or progress.applying or progress.phase
    if phase == 0:
        raise CutoverRefused("nothing to roll back: the cutover has not started (every preview is on Fly)")
    if phase == 1:
        raise CutoverRefused("nothing to roll back to: phase 1 is the first phase (in phase 1 every preview is on "
                             "Fly already). A rollback goes back one phase at a time, never past phase 1")
    return phase


def rollback_plan(ctx: CutoverContext, session: Session, options: Options) -> tuple[int, Plan]:
    undo = _undoing(session)
    back_to = undo - 1
    progress = session.progress
    policy = progress.policy_after(back_to) or RoutingPolicy(phase=back_to, salt=session.policy.salt)
    steps: list[Step] = []
    if undo == 4:
        steps += _undo_phase4(ctx, session, options)
    steps.append(policy_step(session, policy))
    return undo, Plan(undo, [], steps)


def _undo_phase4(ctx: CutoverContext, session: Session, options: Options) -> list[Step]:
    progress = session.progress
    destroyed = [r for r in progress.fly_stopped if r.destroyed is not None]
    if destroyed and not options.force:
        raise CutoverRefused(f"{len(destroyed)} of the Fly machines phase 4 stopped were destroyed since: Fly has less "
                             "capacity than before phase 4, and the users phase 3 sends there would wait. Nothing was "
                             "changed. Pass --force to roll back anyway")
    to_start = [r for r in progress.fly_stopped if r.destroyed is None]

    def start() -> str:
        started, failures = fly_side.start_again(ctx, progress.fly_stopped)
        if failures:
            raise StepFailed("could not start again:\n  - " + "\n  - ".join(failures))
        session.commit(progress=session.progress.model_copy(update={"fly_stopped": ()}),
                       event=f"Fly: {len(started)} machine(s) started again")
        return f"started {len(started)} Fly machine(s) again"

    steps = [Step("fly-start", "Fly: the machines phase 4 stopped, started again",
                  [f"start {r.app}/{r.id} ({r.name}), stopped {r.stopped:%Y-%m-%d %H:%M} UTC" for r in to_start],
                  start)]
    saved = progress.dns_before
    if saved is not None:
        plan = dns_side.restore_plan(ctx, saved)

        def restore() -> str:
            ctx.dns.apply(plan)
            session.commit(progress=session.progress.model_copy(update={"dns_before": None}),
                           event="DNS: the preview name's records before phase 4 restored")
            return "; ".join(plan.lines())

        steps.append(Step("dns-restore", "previews' DNS as it was before phase 4",
                          [c.describe(f"{plan.name}.{plan.zone}") for c in plan.changes], restore))
    return steps


def rollback(ctx: CutoverContext, options: Options, show: Show) -> Outcome:
    session = Session.open(ctx, need_quorum=options.apply)
    undo, plan = rollback_plan(ctx, session, options)
    back_to = undo - 1
    show(plan, f"rollback: phase {undo} ({PHASE_NAMES[undo]}) -> phase {back_to} ({PHASE_NAMES[back_to]})")
    if not options.apply:
        return Outcome(plan, False, [])
    if session.progress.rolling_back != undo:
        session.commit(progress=session.progress.model_copy(update={"rolling_back": undo}),
                       event=f"rollback of phase {undo} started")
    summaries = []
    for step in plan.steps:
        if step.run is None or not step.changes:
            continue
        ctx.say(f"{step.name}: {step.title}")
        summaries.append(f"{step.name}: {step.run()}")
        ctx.say(summaries[-1])
    progress = session.progress
    update = {"phase": back_to, "applying": None, "rolling_back": None, "steps_done": (),
              "entered": tuple(e for e in progress.entered if e.phase <= back_to)}
    if undo == 4:  # the machines are running again (or, forced, gone for good): a later phase 4 starts afresh
        update["fly_stopped"] = ()
    session.commit(progress=progress.model_copy(update=update), event=f"rolled back to phase {back_to}")
    return Outcome(plan, True, summaries)
