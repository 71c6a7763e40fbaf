"""`invoke fleet.status | fleet.ps | fleet.cordon | fleet.drain | fleet.uncordon | fleet.images`.

What ops use to see and steer the previews. Every task takes ``--env lab|production`` (default: production,
or $DRAPE_ENV; production is config/production.toml or $DRAPE_FLEET_FILE, ``lab`` the running lab) and
talks to the engines the way the backend does (mutual TLS, the PKI directory of that environment;
$DRAPE_PKI_DIR overrides).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config import FleetConfig
from drape_fleet.console import console, fail, say
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.tasks.common import ENV_HELP, target_of

GIB = 1024**3


def load_env_fleet(env: str) -> FleetConfig:
    return target_of(env).fleet


def connect(env: str, *, background: bool = False) -> PreviewRuntime:
    fleet = load_env_fleet(env)
    try:
        return PreviewRuntime.connect(fleet, background=background, reaper=False)
    except FileNotFoundError as exc:
        fail(f"{exc}. Issue the backend's client certificate first (`invoke pki.issue`, `invoke provision`), "
             "or point $DRAPE_PKI_DIR at the PKI directory")


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


@task(help={"env": ENV_HELP})
def status(c: Context, env: str = "") -> None:
    """Hosts: reachable, cordoned, memory and nominal cores used/free, previews, foreign look-alikes."""
    runtime = connect(env)
    try:
        hosts = runtime.hosts()
    finally:
        runtime.close()
    table = Table(title=f"preview hosts ({env})")
    for column in ("host", "engine", "placement", "memory used/total GiB", "free GiB", "cores used/nominal",
                   "previews", "claims", "disk limit", "foreign"):
        table.add_column(column)
    for host in hosts:
        engine = f"ok ({host.server_version})" if host.reachable else f"[red]down[/red]: {(host.error or '')[:60]}"
        placement = f"[yellow]cordoned[/yellow] {host.cordon_reason or ''}".strip() if host.cordoned else "open"
        table.add_row(host.name, engine, placement, f"{_gib(host.memory_used)}/{_gib(host.memory_capacity)}",
                      _gib(host.memory_free), f"{host.cpus_used:g}/{host.cpu_capacity:g}", str(host.previews),
                      str(host.claims), "yes" if host.disk_limit else "no", str(len(host.foreign)))
    console.print(table)
    if not all(h.disk_limit for h in hosts if h.reachable):
        console.print("disk limit: the writable layer is size-limited only on overlay2 over XFS with pquota")
    for host in hosts:
        for item in host.foreign:
            console.print(f"[yellow]foreign[/yellow] {host.name}/{item.name} ({item.id[:12]}): {item.reason} "
                          "(ignored by the runtime; its memory label is counted)")
    down = [h.name for h in hosts if not h.reachable]
    if down:
        fail(f"unreachable: {', '.join(down)}")


@task(help={"env": ENV_HELP})
def ps(c: Context, env: str = "") -> None:
    """Every preview: workspace, user, framework, host, phase, address, age."""
    runtime = connect(env)
    try:
        previews = runtime.previews()
    finally:
        runtime.close()
    table = Table(title=f"previews ({env})")
    for column in ("workspace", "user", "project", "framework", "host", "phase", "url", "age"):
        table.add_column(column)
    now = datetime.now(UTC)
    for preview in previews:
        age = f"{(now - preview.created).total_seconds() / 60:.0f} min" if preview.created else "-"
        table.add_row(preview.workspace, preview.user, preview.project, preview.framework, preview.host or "-",
                      str(preview.phase), preview.url or "-", age)
    console.print(table)
    console.print(f"{len(previews)} preview(s)")


@task(help={"host": "host name (e.g. ax2)", "reason": "why (shown in fleet.status)", "env": ENV_HELP})
def cordon(c: Context, host: str, reason: str = "maintenance", env: str = "") -> None:
    """Stop placing new previews on a host (existing ones keep running). Survives backend restarts."""
    runtime = connect(env)
    try:
        runtime.cordon(host, reason)
    except (RuntimeFailure, KeyError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    console.print(f"[green]{host} cordoned[/green]: no new previews there (`invoke fleet.uncordon --host {host}`)")


@task(help={"host": "host name", "env": ENV_HELP})
def uncordon(c: Context, host: str, env: str = "") -> None:
    """Let the host take new previews again."""
    runtime = connect(env)
    try:
        runtime.uncordon(host)
    except (RuntimeFailure, KeyError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    console.print(f"[green]{host} uncordoned[/green]")


@task(help={"host": "host name", "idle_minutes": "stop a preview once idle this long (default 5)",
            "deadline_minutes": "then move what is left to other hosts (default 30)", "env": ENV_HELP})
def drain(c: Context, host: str, idle_minutes: float = 5, deadline_minutes: float = 30,
          env: str = "") -> None:
    """Cordon a host and empty it: idle previews stop, the rest move after the deadline. Then reboot/reinstall."""
    runtime = connect(env, background=True)
    started = time.monotonic()
    try:
        report = runtime.drain(host, idle_s=idle_minutes * 60, deadline_s=deadline_minutes * 60, progress=say)
    except (RuntimeFailure, KeyError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    console.print(f"stopped {len(report.stopped)}, moved {len(report.moved)}, failed {len(report.failed)} "
                  f"in {time.monotonic() - started:.0f} s")
    if not report.done:
        fail(f"{report.remaining} preview(s) are still on {host}: " + "; ".join(report.failed))
    console.print(f"[green]{host} is drained[/green] and stays cordoned (`invoke fleet.uncordon --host {host}`)")


@task(help={"env": ENV_HELP, "framework": "only this template (default: all configured)",
            "base": "base image for the templates (production default node:22-bookworm-slim)"})
def images(c: Context, env: str = "", framework: str = "", base: str = "") -> None:
    """Build the preview templates (drape-nextjs/react/vue) and put them on every host."""
    from drape_fleet import preview_images

    target = target_of(env)
    fleet = target.fleet
    wanted = [framework] if framework else sorted(fleet.runtime.frameworks)
    runtime = connect(env)
    try:
        if target.environment == "lab":
            from drape_fleet.lab import previews

            for name in wanted:
                tag = previews.ensure_lab_template(name, fleet, say)
                previews.ship_image(runtime.fleet.engines(), tag, say)
        else:
            for name in wanted:
                image = fleet.runtime.frameworks[name].image
                for engine in runtime.fleet.engines():
                    say(f"{engine.name}: building {image}")
                    preview_images.build_on_engine(engine, name, image,
                                                   base=base or preview_images.PRODUCTION_BASE)
    except (RuntimeFailure, KeyError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    console.print(f"[green]images ready[/green]: {', '.join(wanted)}")
