"""`invoke cutover phase1` ... `phase5`, `cutover status`, `cutover rollback`, `cutover report`: thin over
drape_fleet.cutover (parse the options, run, print; exit 1 when refused or failed, 2 when phase 5 found
something missing).

Every phase prints its gate and its plan; nothing changes without ``--apply``. ``--env lab`` (or $DRAPE_ENV)
picks the fleet as every task does; the Fly and Hetzner Cloud tokens come from the secrets (DRAPE_FLY_API_TOKEN,
DRAPE_HCLOUD_TOKEN).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.console import console, fail, say
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


def _finish(outcome: Outcome) -> None:
    if not outcome.applied:
        console.print("[bold]dry run[/bold]: nothing changed. Run again with --apply to make these changes.")
        return
    console.print(f"[green]phase {outcome.plan.number} applied[/green]" if outcome.summaries else
                  f"[green]phase {outcome.plan.number}: nothing to change[/green]")
    if outcome.missing:
        console.print("[yellow]missing (reported, not faked)[/yellow]:\n  - " + "\n  - ".join(outcome.missing))
        sys.exit(2)


def _phase(env: str, number: int, options: Options) -> None:
    ctx = _context(env)
    try:
        outcome = run_phase(ctx, number, options, show_plan)
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    _finish(outcome)


@task(help={"apply": APPLY_HELP, "reverify": "run `invoke verify` again even if it passed before", "env": ENV_HELP})
def phase1(c: Context, apply: bool = False, reverify: bool = False, env: str = "") -> None:
    """Infrastructure: preview hosts provisioned, verified, templates on them; every user still on Fly."""
    _phase(env, 1, Options(apply=apply, reverify=reverify))


@task(help={"apply": APPLY_HELP, "env": ENV_HELP})
def phase2(c: Context, apply: bool = False, env: str = "") -> None:
    """Backend adapted: a smoke preview on every host, Docker health checks green, internal users to Hetzner."""
    _phase(env, 2, Options(apply=apply))


def _percent(value: str) -> float | None:
    if not value:
        return None
    try:
        return float(value.strip().rstrip("%"))
    except ValueError:
        fail(f"--percent {value!r} is not a number: pass a share from 0 to 100, e.g. --percent 10")


@task(help={"apply": APPLY_HELP, "allow": "beta users on Hetzner, comma-separated (replaces the allowlist)",
            "percent": "sticky share of the other users on Hetzner, 0-100", "load_test": "run the load test again",
            "env": ENV_HELP})
def phase3(c: Context, apply: bool = False, allow: str | None = None, percent: str = "", load_test: bool = False,
           env: str = "") -> None:
    """Parallel testing: allowlist + sticky share on Hetzner, Fly as fallback, a load test, real vs expected."""
    users = None if allow is None else tuple(u.strip() for u in allow.split(",") if u.strip())
    _phase(env, 3, Options(apply=apply, allow=users, percent=_percent(percent), load_test=load_test))


@task(help={"apply": APPLY_HELP, "destroy_fly": "destroy the Fly machines phase 4 stopped (after the grace period)",
            "confirm": "with --destroy-fly --apply: the app name(s) whose machines are destroyed", "env": ENV_HELP})
def phase4(c: Context, apply: bool = False, destroy_fly: bool = False, confirm: str = "", env: str = "") -> None:
    """Full migration: everyone on Hetzner, previews' DNS on the hosts, Fly machines stopped (destroyed later)."""
    if destroy_fly and apply and not confirm and sys.stdin.isatty():
        confirm = input("destroying Fly machines cannot be undone; type the app name(s) to confirm: ").strip()
    _phase(env, 4, Options(apply=apply, destroy_fly=destroy_fly, confirm=confirm))


@task(help={"apply": APPLY_HELP, "env": ENV_HELP})
def phase5(c: Context, apply: bool = False, env: str = "") -> None:
    """Optimizations: templates, store warming, pre-warm and persistent previews, monitoring (missing: reported)."""
    _phase(env, 5, Options(apply=apply))


@task(help={"apply": APPLY_HELP, "force": "roll back phase 4 even though some Fly machines were destroyed",
            "env": ENV_HELP})
def rollback(c: Context, apply: bool = False, force: bool = False, env: str = "") -> None:
    """Back to the previous phase: Fly machines started again, DNS and routing policy as they were."""
    ctx = _context(env)
    try:
        outcome = run_rollback(ctx, Options(apply=apply, force=force), show_plan)
    except FAILURES as exc:
        fail(str(exc))
    finally:
        ctx.close()
    if not outcome.applied:
        console.print("[bold]dry run[/bold]: nothing changed. Run again with --apply to roll back.")
    else:
        console.print(f"[green]rolled back to phase {outcome.plan.number - 1}[/green]")


@task(help={"json": "print the status as JSON", "env": ENV_HELP})
def status(c: Context, json_: bool = False, env: str = "") -> None:
    """The phase, the gate into the next one, the routing split, Fly vs Hetzner, the state store per host."""
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


@task(help={"out": "where to write the chart (PNG; default: <environment state>/cutover-report.png)",
            "json": "print the rows as JSON", "env": ENV_HELP})
def report(c: Context, out: str = "", json_: bool = False, env: str = "") -> None:
    """Preview starts measured vs the plan's expected times, by phase, provider and kind; a chart as PNG."""
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
