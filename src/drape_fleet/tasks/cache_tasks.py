"""`invoke cache.warm | cache.status | cache.prune`: each host's shared pnpm store (drape_fleet.store);
`invoke cache.workspaces [--prune]`: each host's kept workspaces, within their budget.

Every task takes ``--host NAME`` (repeatable) or ``--all`` and ``--env``; hosts are worked on in parallel, each
through its Docker API (mutual TLS), as the runtime reaches it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config.models import Host
from drape_fleet.console import console, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.store import service
from drape_fleet.store.job import JobReport, StoreJobError
from drape_fleet.store.workspaces import prune as prune_workspaces
from drape_fleet.tasks.common import ENV_HELP, engines_of, hosts_of

T = TypeVar("T")
HOSTS_HELP = {"host": "a host (repeatable)", "all": "every host of the fleet", "env": ENV_HELP}


def _each(target: FleetTarget, hosts: list[Host], work: Callable[[Engine], T]) -> list[tuple[Host, T | Exception]]:
    engines = engines_of(target)
    try:
        def one(host: Host) -> T | Exception:
            try:
                return work(engines[host.name])
            except (RuntimeFailure, StoreJobError, OSError) as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            return list(zip(hosts, pool.map(one, hosts), strict=True))
    finally:
        engines.close()


def _print_job(report: JobReport) -> None:
    table = Table(title=f"{report.host}: store {'rebuild' if report.rebuild else 'fill'}")
    for column in ("source", "kind", "seconds", "downloaded", "reused", "note"):
        table.add_column(column)
    for result in report.results:
        table.add_row(result.source, result.kind, "-" if result.seconds is None else f"{result.seconds:.1f}",
                      str(result.downloaded if result.downloaded is not None else "-"),
                      str(result.reused if result.reused is not None else "-"),
                      f"[red]{result.note}[/red]" if not result.ok else result.note)
    console.print(table)


def _finish(outcomes: list[tuple[Host, JobReport | Exception]], started: float, what: str) -> None:
    problems = []
    for host, outcome in outcomes:
        if isinstance(outcome, Exception):
            problems.append(f"{host.name}: {outcome}")
            continue
        _print_job(outcome)
        if outcome.exit_code != 0:
            problems.append(f"{host.name}: the job ended with {outcome.exit_code}: {outcome.log_tail[-400:]}")
        problems += [f"{host.name}: {r.source}: {r.note}" for r in outcome.failed]
    elapsed = time.monotonic() - started
    if problems:
        fail(f"{what} finished in {elapsed:.0f} s with problems:\n  " + "\n  ".join(problems))
    console.print(f"[green]{what} done[/green] on {', '.join(h.name for h, _ in outcomes)} in {elapsed:.0f} s")


@task(help=HOSTS_HELP, iterable=["host"])
def warm(c: Context, host: list[str] | None = None, all: bool = False, env: str = "") -> None:
    """Fill each host's store (as its owner) from the templates, the popular packages and recent projects."""
    target, hosts = hosts_of(env, host or [], all)
    started = time.monotonic()
    say(f"filling the stores of {', '.join(h.name for h in hosts)}: templates, popular packages, recent projects")
    _finish(_each(target, hosts, lambda engine: service.fill(engine, target.fleet)), started, "cache.warm")


@task(help={**HOSTS_HELP, "dry": "only show what the rebuilt store would hold", "yes": "do not ask"},
      iterable=["host"])
def prune(c: Context, host: list[str] | None = None, all: bool = False, env: str = "", dry: bool = False,
          yes: bool = False) -> None:
    """Rebuild each host's store from its current sources and swap it in (packages nothing needs any more go).
    The swap waits for running installs (they hold the store's lock); the old store stays if a fill fails."""
    target, hosts = hosts_of(env, host or [], all)
    fleet = target.fleet
    plans = _each(target, hosts, lambda engine: service.sources_for(engine, fleet))
    for entry, plan in plans:
        if isinstance(plan, Exception):
            fail(f"{entry.name}: {plan}")
        console.print(f"{entry.name}: the rebuilt store would hold {len(plan)} source(s): "
                      + ", ".join(source.name for source in plan))
    if dry:
        console.print("(dry run: nothing changed)")
        return
    names = ", ".join(entry.name for entry, _ in plans)
    if not yes:
        answer = input(f"rebuild the store of {names}; packages no source above needs are deleted. Type 'prune': ") \
            if console.is_terminal else ""
        if answer.strip() != "prune":
            fail("not confirmed; nothing changed (pass --yes to skip the question)")
    started = time.monotonic()
    chosen = {entry.name: plan for entry, plan in plans if not isinstance(plan, Exception)}
    _finish(_each(target, hosts, lambda engine: service.fill(engine, fleet, rebuild=True, sources=chosen[engine.name])),
            started, "cache.prune")


@task(help={**HOSTS_HELP, "days": "the hit rate's window (default 7)", "json": "print JSON"}, iterable=["host"])
def status(c: Context, host: list[str] | None = None, all: bool = False, env: str = "", days: float = 7,
           json_: bool = False) -> None:
    """Each host's store: size, files, layouts, age of the last fill, and the install hit rate."""
    target, hosts = hosts_of(env, host or [], all)
    now = datetime.now(UTC)
    results = _each(target, hosts, lambda engine: service.status(engine, target.fleet, window=timedelta(days=days)))
    if json_:
        rows = [{"host": entry.name, "error": str(found)} if isinstance(found, Exception) else {
            "host": entry.name, "bytes": found.bytes, "files": found.files, "layouts": found.layouts,
            "last_fill": found.last_fill, "age_s": (age.total_seconds() if (age := found.age(now)) else None),
            "hits": found.hits.hits, "misses": found.hits.misses, "kept": found.hits.kept, "other": found.hits.other,
            "hit_rate": found.hits.rate} for entry, found in results]
        console.print_json(json.dumps(rows))
    else:
        table = Table(title=f"shared pnpm stores (hit rate over {days:g} days)")
        for column in ("host", "size", "files", "layouts", "last fill", "hit rate"):
            table.add_column(column)
        for entry, found in results:
            if isinstance(found, Exception):
                table.add_row(entry.name, f"[red]{found}[/red]", "", "", "", "")
                continue
            age = found.age(now)
            last = "never" if age is None else (f"{age.total_seconds() / 3600:.1f} h ago "
                                                f"({(found.last_fill or {}).get('kind')}, "
                                                f"{(found.last_fill or {}).get('failed')} failed)")
            table.add_row(entry.name, f"{found.bytes / 1024**3:.2f} GiB", str(found.files), found.layouts or "-",
                          last, found.hits.describe())
        console.print(table)
    if any(isinstance(found, Exception) for _, found in results):
        fail("some hosts could not be read (above)")


@task(help={**HOSTS_HELP, "prune": "remove what passes the budget", "dry": "with --prune: only show it",
            "yes": "do not ask"}, iterable=["host"])
def workspaces(c: Context, host: list[str] | None = None, all: bool = False, env: str = "", prune: bool = False,
               dry: bool = False, yes: bool = False) -> None:
    """Each host's kept workspaces (a workspace's clone, node_modules and caches, kept for its next start): size and
    count against [previews.store] workspace_budget_gib; --prune removes the least recently started beyond it."""
    target, hosts = hosts_of(env, host or [], all)
    plans = _each(target, hosts, lambda engine: service.workspaces(engine, target.fleet))
    table = Table(title="kept workspaces")
    for column in ("host", "kept", "in use", "size", "budget", "beyond the budget (least recently started first)"):
        table.add_column(column)
    for entry, found in plans:
        if isinstance(found, Exception):
            table.add_row(entry.name, f"[red]{found}[/red]", "", "", "", "")
            continue
        every = found.remove + found.keep
        table.add_row(entry.name, str(len(every)), str(sum(w.in_use for w in every)),
                      f"{found.total_kib / 1024**2:.2f} GiB", f"{found.budget_kib / 1024**2:.0f} GiB",
                      ", ".join(f"{w.workspace} ({w.kib / 1024:.0f} MiB, {w.last_start or 'never started'})"
                                for w in found.remove) or "-")
    console.print(table)
    if any(isinstance(found, Exception) for _, found in plans):
        fail("some hosts could not be read (above)")
    doomed = [(entry, found) for entry, found in plans if not isinstance(found, Exception) and found.remove]
    if not prune or not doomed:
        return
    if dry:
        console.print("(dry run: nothing removed)")
        return
    count = sum(len(found.remove) for _, found in doomed)
    if not yes:
        answer = input(f"remove {count} kept workspace(s) listed above (their next start installs again). "
                       "Type 'prune': ") if console.is_terminal else ""
        if answer.strip() != "prune":
            fail("not confirmed; nothing removed (pass --yes to skip the question)")
    chosen = {entry.name: found.remove for entry, found in doomed}
    results = _each(target, [entry for entry, _ in doomed],
                    lambda engine: prune_workspaces(engine, chosen[engine.name]))
    for entry, outcome in results:
        if isinstance(outcome, Exception):
            fail(f"{entry.name}: {outcome}")
        removed, left = outcome
        console.print(f"{entry.name}: removed {len(removed)}" + (f"; left {', '.join(left)}" if left else ""))
