"""`invoke cutover phase1` ... `phase5`, `invoke cutover status`, `rollback`, `report`: one task whose first
argument is the action (ops type `invoke cutover phase3 --percent 10 --apply`), thin over drape_fleet.cutover:
parse the options, run, print; exit 1 when refused or failed, 2 when phase 5 found something missing.

Every phase prints its gate and its plan; nothing changes without ``--apply``. ``--env lab`` (or $DRAPE_ENV)
picks the fleet as every task does; the Fly and Hetzner Cloud tokens come from the secrets (DRAPE_FLY_API_TOKEN,
DRAPE_HCLOUD_TOKEN).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NoReturn

from invoke.context import Context
from invoke.tasks import task
from rich.markup import escape

from drape_fleet import console as out
from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.console import console
from drape_fleet.cutover.context import CutoverContext, CutoverRefused
from drape_fleet.cutover.report import render_chart, report_rows
from drape_fleet.cutover.runner import Outcome, run_phase
from drape_fleet.cutover.runner import rollback as run_rollback
from drape_fleet.cutover.show import report_table, show_plan, show_status
from drape_fleet.cutover.status import status_data
from drape_fleet.cutover.steps import Options, StepFailed
from drape_fleet.fly import FlyError
from drape_fleet.hetzner.dns_plan import DnsError
from drape_fleet.paths import project_root
from drape_fleet.routing.records import RecordError
from drape_fleet.routing.store import StoreError
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.tasks.common import ENV_HELP, target_of

FAILURES = (CutoverRefused, StepFailed, StoreError, RecordError, ConfigError, FlyError, DnsError, RuntimeFailure,
            FileNotFoundError)


def fail(message: str, code: int = 1) -> NoReturn:
    """Messages name fleet file sections (``[cutover]``, ``[fly]``): console.fail prints them as text."""
    out.fail(message, code)


def say(message: str) -> None:
    out.say(escape(message))


APPLY_HELP = "make the changes (without it: the gate and the plan only, nothing changed)"


def _context(env: str) -> CutoverContext:
    target = target_of(env)
    try:
        secrets = load_secrets(repo_root=project_root())
        ctx = CutoverContext(target, secrets, say)
        ctx.settings  # noqa: B018 - the [cutover] section checked against the fleet before any host
    except ConfigError as exc:
        fail(str(exc))
    return ctx


NEXT = {1: "invoke cutover phase2", 2: "invoke cutover phase3 --allow <beta users> --percent <share>",
        3: "invoke cutover phase4 (its gate reads phase 3's measurements)", 4: "invoke cutover phase5",
        5: "invoke cutover phase4 --destroy-fly, once the grace period is over"}


def _finish(outcome: Outcome, seconds: float, *, destroying: bool = False) -> None:
    if not outcome.applied:
        console.print("[bold]dry run[/bold]: nothing changed. Run again with --apply to make these changes.")
        return
    number = outcome.plan.number
    if outcome.summaries:
        console.print(f"[green]phase {number} applied[/green] in {seconds:.0f} s:")
        for summary in outcome.summaries:
            console.print(f"  - {escape(summary)}", soft_wrap=True)
    else:
        console.print(f"[green]phase {number}: nothing to change[/green]")
    if outcome.missing:
        console.print("[yellow]missing (reported, not faked)[/yellow]:\n  - " + escape("\n  - ".join(outcome.missing)),
                      soft_wrap=True)
    status = "`invoke cutover status` shows where things stand"
    console.print(status if destroying else f"next: {NEXT[number]}; {status}")
    if outcome.missing:
        sys.exit(2)


def _stopped(action: str, applying: bool, exc: BaseException | None) -> NoReturn:
    """A phase or rollback that stopped half-way (a step failed, or Ctrl-C): what it left and how to go on."""
    again = f"invoke cutover {action} --apply"
    if not applying:
        fail(str(exc) if exc else "interrupted: nothing was changed", 1 if exc else 130)
    carry_on = (f"what finished is recorded; run `{again}` again to carry on from the first unfinished "
                "one" + ("" if action == "rollback" else ", or `invoke cutover rollback --apply` to go back"))
    if exc is None:
        fail(f"interrupted: {carry_on}", 130)
    fail(f"{exc}\n{carry_on}")


def _phase(env: str, number: int, options: Options) -> None:
    ctx = _context(env)
    started = time.monotonic()
    try:
        outcome = run_phase(ctx, number, options, show_plan)
    except StepFailed as exc:
        _stopped(f"phase{number}", options.apply, exc)
    except KeyboardInterrupt:
        _stopped(f"phase{number}", options.apply, None)
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    _finish(outcome, time.monotonic() - started, destroying=options.destroy_fly)


ACTIONS = ("phase1", "phase2", "phase3", "phase4", "phase5", "status", "rollback", "report")
ONLY = {"reverify": ("phase1",), "allow": ("phase3",), "percent": ("phase3",), "load_test": ("phase3",),
        "destroy_fly": ("phase4",), "confirm": ("phase4",), "force": ("rollback",), "json": ("status", "report"),
        "out": ("report",), "apply": ("phase1", "phase2", "phase3", "phase4", "phase5", "rollback")}


def _percent(value: str) -> float | None:
    if not value:
        return None
    try:
        return float(value.strip().rstrip("%"))
    except ValueError:
        fail(f"--percent {value!r} is not a number: pass a share from 0 to 100, e.g. --percent 10")


@task(positional=["action"], help={
    "action": "phase1 | phase2 | phase3 | phase4 | phase5 | status | rollback | report",
    "apply": APPLY_HELP, "reverify": "phase1: run `invoke verify` again even if it passed before",
    "allow": "phase3: beta users on Hetzner, comma-separated (replaces the allowlist)",
    "percent": "phase3: sticky share of the other users on Hetzner, 0-100",
    "load_test": "phase3: run the load test again", "destroy_fly": "phase4: destroy the Fly machines phase 4 "
    "stopped (after the grace period)", "confirm": "phase4 --destroy-fly --apply: the app name(s) to destroy",
    "force": "rollback: roll phase 4 back even though some Fly machines were destroyed",
    "json": "status, report: print JSON", "out": "report: the chart's path (default: <environment state>/"
    "cutover-report.png)", "env": ENV_HELP})
def cutover(c: Context, action: str, apply: bool = False, reverify: bool = False, allow: str | None = None,
            percent: str = "", load_test: bool = False, destroy_fly: bool = False, confirm: str = "",
            force: bool = False, json_: bool = False, out: str = "", env: str = "") -> None:
    """The Fly.io -> Hetzner cutover: `invoke cutover phase1` ... `phase5`, `status`, `rollback`, `report`."""
    if action not in ACTIONS:
        fail(f"unknown cutover action {action!r}: use one of {', '.join(ACTIONS)} (e.g. invoke cutover phase1)")
    given = {"reverify": reverify, "allow": allow is not None, "percent": bool(percent), "load_test": load_test,
             "destroy_fly": destroy_fly, "confirm": bool(confirm), "force": force, "json": json_, "out": bool(out),
             "apply": apply}
    wrong = [name for name, used in given.items() if used and action not in ONLY[name]]
    if wrong:
        fail("; ".join(f"--{name.replace('_', '-')} applies to {' and '.join(ONLY[name])} only" for name in wrong)
             + f", not to {action}")
    if confirm and not destroy_fly:
        fail("--confirm names the Fly app(s) `phase4 --destroy-fly --apply` destroys; it means nothing without "
             "--destroy-fly")
    if action == "status":
        _status(env, json_)
    elif action == "report":
        _report(env, out, json_)
    elif action == "rollback":
        _rollback(env, Options(apply=apply, force=force))
    else:
        number = int(action[-1])
        users = None if allow is None else tuple(u.strip() for u in allow.split(",") if u.strip())
        if destroy_fly and apply and not confirm and sys.stdin.isatty():
            try:
                confirm = input("destroying Fly machines cannot be undone; type the app name(s) to confirm: ").strip()
            except (EOFError, KeyboardInterrupt):
                fail("not confirmed: nothing was destroyed", 130)
        _phase(env, number, Options(apply=apply, allow=users, percent=_percent(percent), load_test=load_test,
                                    reverify=reverify, destroy_fly=destroy_fly, confirm=confirm))


def _rollback(env: str, options: Options) -> None:
    ctx = _context(env)
    try:
        outcome = run_rollback(ctx, options, show_plan)
    except StepFailed as exc:
        _stopped("rollback", options.apply, exc)
    except KeyboardInterrupt:
        _stopped("rollback", options.apply, None)
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    if not outcome.applied:
        console.print("[bold]dry run[/bold]: nothing changed. Run again with --apply to roll back.")
        return
    console.print(f"[green]rolled back to phase {outcome.plan.number - 1}[/green]" + (":" if outcome.summaries else ""))
    for summary in outcome.summaries:
        console.print(f"  - {escape(summary)}", soft_wrap=True)
    console.print("previews running on Hetzner keep running; new previews follow the rolled-back policy. "
                  "`invoke cutover status` shows where things stand")


def _status(env: str, json_: bool) -> None:
    ctx = _context(env)
    try:
        data = status_data(ctx)
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    if json_:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        show_status(data)


def _report(env: str, out: str, json_: bool) -> None:
    ctx = _context(env)
    try:
        rows = report_rows(ctx.metrics())
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    path = Path(out) if out else ctx.target.env.state_dir / "cutover-report.png"
    render_chart(rows, path, title=f"Drape previews, {ctx.fleet.environment.name}: measured vs the plan")
    if json_:
        sys.stdout.write(json.dumps({"rows": [r.as_dict() for r in rows], "chart": str(path)}, indent=2) + "\n")
        return
    console.print(report_table(rows))
    console.print(f"chart: {path}")
