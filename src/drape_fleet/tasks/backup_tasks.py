"""`invoke backup.*`: encrypted, deduplicated restic backups of what is not in git (docs/backups.md).

``--host NAME`` (repeatable) or ``--all`` names hosts, ``--ops`` the ops machine's own items (the PKI). Every
task takes ``--env`` like the others and exits non-zero when anything failed.
"""

from __future__ import annotations

import json

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.backup import service
from drape_fleet.backup.agent import BackupError
from drape_fleet.backup.catalogue import CATALOGUE
from drape_fleet.backup.plan import NoBackupSection
from drape_fleet.backup.service import Outcome
from drape_fleet.console import console, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.tasks.common import ENV_HELP, hosts_of, target_of

SOURCES_HELP = {"host": "a host (repeatable)", "all": "every host", "ops": "the ops machine's items (the PKI)",
                "env": ENV_HELP}


def _sources(env: str, host: list[str] | None, all: bool, ops: bool, *, default_all: bool = False
             ) -> tuple[FleetTarget, list[str]]:
    if not (host or all or ops):
        if not default_all:
            fail("say which: --host NAME (repeatable), --all, and/or --ops")
        all, ops = True, True
    target, hosts = hosts_of(env, host or [], all) if (host or all) else (target_of(env), [])
    if target.fleet.backup is None:
        fail(str(NoBackupSection(f"{target.env.fleet_file} has no [backup] section")))
    return target, service.sources_of(target, [h.name for h in hosts], ops)


def _report(outcomes: list[Outcome], describe: str) -> None:
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        message = str(outcome.error) if outcome.error else json.dumps(outcome.answer)[:600]
        console.print(f"[red]{outcome.source}[/red]: {message}")
    if failed:
        fail(f"{describe} failed for {', '.join(o.source for o in failed)}")


@task(help={"env": ENV_HELP})
def items(c: Context, env: str = "") -> None:
    """The catalogue: every piece of state outside git, whether it is backed up, and why."""
    table = Table(title="what is not in git")
    for column in ("item", "decision", "where", "why"):
        table.add_column(column)
    for entry in CATALOGUE:
        table.add_row(entry.name, entry.decision, entry.runs_on or "-", entry.why)
    console.print(table)


@task(help={"fingerprint": "the target's SHA256 fingerprint from the provider (Storage Box: Hetzner docs)",
            "yes": "pin without asking (only after comparing the fingerprint yourself)", "env": ENV_HELP})
def trust(c: Context, fingerprint: str = "", yes: bool = False, env: str = "") -> None:
    """Pin the backup target's SSH host key next to the fleet file (hosts and ops then refuse any other key)."""
    target = target_of(env)

    def confirm(question: str) -> bool:
        console.print(question)
        if yes:
            return True
        return console.is_terminal and input("type 'yes' to pin it: ").strip() == "yes"

    try:
        path = service.trust(target, fingerprint or None, confirm)
    except (BackupError, NoBackupSection) as exc:
        fail(str(exc))
    console.print(f"[green]pinned[/green] in {path}: commit it, then `invoke provision --only backup`")


@task(help={"env": ENV_HELP})
def init(c: Context, env: str = "") -> None:
    """Authorize every host's backup key on the target and create the repositories that are missing."""
    target = target_of(env)
    try:
        outcomes = service.init(target, say)
    except (BackupError, NoBackupSection) as exc:
        fail(str(exc))
    for outcome in outcomes:
        if outcome.ok:
            state = "created" if outcome.answer.get("created") else "already there"
            say(f"{outcome.source}: repository {state}: {outcome.answer.get('repository')}")
    _report(outcomes, "backup.init")


@task(help={**SOURCES_HELP, "item": "only this item (default: every item of each source)"}, iterable=["host"])
def run(c: Context, host: list[str] | None = None, all: bool = False, ops: bool = False, item: str = "",
        env: str = "") -> None:
    """Back up now (the hosts' timers do it on their own): consistent copy, restic backup, retention."""
    target, sources = _sources(env, host, all, ops)
    say(f"backing up {', '.join(sources)} (a first backup of a large store takes a while)")
    outcomes = service.run(target, sources, item or None)
    for outcome in outcomes:
        for result in outcome.answer.get("results", []):
            if "skipped" in result:
                continue
            say(f"{outcome.source}/{result['item']}: snapshot {result['snapshot']}, {result['files']} files, "
                f"{result['size_bytes']} bytes read, {result['added_bytes']} added, {result['duration_s']} s")
    _report(outcomes, "backup.run")


@task(name="list", help={**SOURCES_HELP, "item": "only this item", "json": "print JSON"}, iterable=["host"])
def list_snapshots(c: Context, host: list[str] | None = None, all: bool = False, ops: bool = False, item: str = "",
         json_: bool = False, env: str = "") -> None:
    """Snapshots per source (default: every source), read from the target: works while a host is gone."""
    target, sources = _sources(env, host, all, ops, default_all=True)
    outcomes = service.snapshots(target, sources, item or None)
    if json_:
        print(json.dumps({o.source: o.answer.get("snapshots", []) for o in outcomes if o.ok}, indent=2))
    else:
        table = Table(title=f"snapshots ({target.environment})")
        for column in ("source", "item", "snapshot", "time (UTC)"):
            table.add_column(column)
        for outcome in outcomes:
            for snap in outcome.answer.get("snapshots", []):
                table.add_row(outcome.source, snap["item"], snap["short_id"], snap["time"][:19])
        console.print(table)
    _report(outcomes, "backup.list")


@task(help={"host": "the host to restore onto", "ops": "restore the ops machine's item (the PKI) here",
            "item": "the item (`invoke backup.items`)", "at": "latest, a snapshot id, or a time (2026-11-29T10:00Z)",
            "force": "restore even over newer data (it is kept aside, not deleted)",
            "dry": "only say what would happen",
            "yes": "do not ask for confirmation", "env": ENV_HELP})
def restore(c: Context, item: str, host: str = "", ops: bool = False, at: str = "latest", force: bool = False,
            dry: bool = False, yes: bool = False, env: str = "") -> None:
    """Put an item back as it was at --at. Refuses over newer data unless --force, naming what would be lost."""
    if bool(host) == ops:
        fail("say where: --host NAME or --ops")
    target, sources = _sources(env, [host] if host else [], False, ops)
    source = sources[0]
    try:
        preview = service.restore(target, source, item, at, force=force, dry_run=True)
    except BackupError as exc:
        fail(str(exc))
    console.print(f"{source}/{item}: restore snapshot {preview['snapshot']} ({preview['snapshot_time'][:19]} UTC) "
                  f"into {preview['target']}")
    if preview["newer_files"]:
        console.print(f"[yellow]--force[/yellow]: {preview['newer_files']} newer file(s) "
                      f"({preview['newer_bytes']} bytes) will be replaced; the current data is kept aside")
    if dry:
        console.print("(dry run: nothing changed)")
        return
    if not yes:
        answer = input(f"type '{item}' to replace {preview['target']} on {source}: ") if console.is_terminal else ""
        if answer.strip() != item:
            fail("not confirmed; nothing changed (pass --yes to skip the question)")
    try:
        done = service.restore(target, source, item, at, force=force)
    except BackupError as exc:
        fail(str(exc))
    kept = f"; the previous data is kept in {done['kept_aside']}" if done.get("kept_aside") else ""
    console.print(f"[green]restored[/green] {source}/{item}: {done['restored_files']} files in {done['seconds']} s"
                  f"{kept}")


@task(help={**SOURCES_HELP, "item": "only this item"}, iterable=["host"])
def drill(c: Context, host: list[str] | None = None, all: bool = False, ops: bool = False, item: str = "",
          env: str = "") -> None:
    """Restore the latest snapshots into a scratch place, compare checksums with the source, report age and size."""
    target, sources = _sources(env, host, all, ops, default_all=True)
    outcomes = service.drill(target, sources, item or None)
    table = Table(title="restore drill")
    for column in ("source", "item", "result", "snapshot age", "size", "matched", "changed since", "time"):
        table.add_column(column)
    for outcome in outcomes:
        for result in outcome.answer.get("results", []):
            if "skipped" in result:
                continue
            verdict = "[green]ok[/green]" if result.get("ok") else f"[red]FAILED[/red] {_why(result)}"
            table.add_row(outcome.source, result["item"], verdict, f"{result.get('age_s', 0) / 3600:.1f} h",
                          f"{result.get('size_bytes', 0)} B", str(result.get("matched", "-")),
                          str(result.get("changed_since", "-")), f"{result.get('seconds', 0)} s")
    console.print(table)
    _report(outcomes, "backup.drill")


def _why(result: dict[str, object]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        return str(error.get("message"))
    return f"mismatched {result.get('mismatched')}, missing {result.get('missing')}"


@task(help={**SOURCES_HELP}, iterable=["host"])
def check(c: Context, host: list[str] | None = None, all: bool = False, ops: bool = False, env: str = "") -> None:
    """`restic check` of each repository (default: all), from the ops machine."""
    target, sources = _sources(env, host, all, ops, default_all=True)
    outcomes = service.check(target, sources)
    for outcome in outcomes:
        if outcome.ok:
            say(f"{outcome.source}: repository checks clean")
    _report(outcomes, "backup.check")




@task(help={"snapshot": "take a snapshot of the whole Storage Box now, with this description",
            "plan": "make the box's snapshot plan the fleet file's backup.target_snapshots",
            "apply": "with --plan: change it (otherwise only say what would change)", "env": ENV_HELP})
def target(c: Context, snapshot: str = "", plan: bool = False, apply: bool = False, env: str = "") -> None:
    """The Storage Box through the Hetzner API: usage, its own snapshots, a snapshot now, its snapshot plan."""
    from drape_fleet.backup.storagebox import StorageBox, StorageBoxError
    from drape_fleet.config import ConfigError, load_secrets
    from drape_fleet.paths import project_root

    chosen = target_of(env)
    settings = chosen.fleet.backup
    if settings is None or settings.target.storage_box_id is None:
        fail("the fleet file's [backup.target] has no storage_box_id: this target is not a Storage Box managed "
             "through the Hetzner API (set storage_box_id from Console → Storage Boxes)")
    try:
        token = load_secrets(repo_root=project_root()).value("hcloud_token")
        box = StorageBox.connect(token, settings.target.storage_box_id, api_endpoint=settings.target.api_endpoint)
        if snapshot:
            say(f"snapshot {box.snapshot(snapshot)} taken")
        if plan:
            if settings.target_snapshots is None:
                fail("no [backup.target_snapshots] in the fleet file: add max_snapshots, hour and minute")
            box.ensure_plan(settings.target_snapshots, apply=apply, log=say)
        status = box.status()
    except (StorageBoxError, ConfigError) as exc:
        fail(str(exc))
    gib = 1024**3
    console.print(f"{status.name} ({status.server}): {status.used_bytes / gib:.1f} GiB data + "
                  f"{status.snapshots_bytes / gib:.1f} GiB snapshots of {status.size_bytes / gib:.0f} GiB "
                  f"({status.free_bytes / gib:.1f} GiB free)")
    plan_text = (f"daily {status.plan.hour:02d}:{status.plan.minute:02d} UTC, keep {status.plan.max_snapshots}"
                 if status.plan else "none")
    console.print(f"snapshot plan: {plan_text}; snapshots: {len(status.snapshots)}")
    for entry in status.snapshots[-10:]:
        console.print(f"  {entry.id} {entry.created[:19]} {'automatic' if entry.automatic else 'manual'} {entry.name}")
