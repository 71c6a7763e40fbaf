"""`invoke fleet.status | fleet.ps | fleet.cordon | fleet.drain | fleet.uncordon | fleet.images`.

What ops use to see and steer the previews. Every task takes ``--env lab|production`` (default: production,
or $DRAPE_ENV; production is config/production.toml or $DRAPE_FLEET_FILE, ``lab`` the running lab) and
talks to the engines the way the backend does (mutual TLS, the PKI directory of that environment;
$DRAPE_PKI_DIR overrides).
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config import FleetConfig
from drape_fleet.console import console, fail, say
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
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
    """Hosts: health, whether they take previews (and why not), memory and nominal cores used/free, previews,
    disk limits, certificate days left, foreign look-alikes."""
    fleet = load_env_fleet(env)
    runtime = connect(env)
    try:
        hosts = runtime.hosts()
        certificates = certificate_days(fleet, runtime.fleet)
    finally:
        runtime.close()
    table = Table(title=f"preview hosts ({env or fleet.environment.name})")
    for column in ("host", "engine", "placement", "memory used/total GiB", "free GiB", "cores used/nominal",
                   "previews", "claims", "disk limit", "cert days", "foreign"):
        table.add_column(column)
    for host in hosts:
        if host.reachable:
            engine = f"{host.state} ({host.server_version})" if host.state != "up" else f"ok ({host.server_version})"
        else:
            engine = f"[red]{host.state if host.state == 'down' else 'no answer'}[/red]: {(host.error or '')[:60]}"
        if host.cordoned:
            placement = f"[yellow]cordoned[/yellow] {host.cordon_reason or ''}".strip()
        elif host.reachable and not host.placeable:
            placement = f"[red]closed[/red]: {host.unplaceable}"
        else:
            placement = "open"
        days = certificates.get(host.name)
        table.add_row(host.name, engine, placement, f"{_gib(host.memory_used)}/{_gib(host.memory_capacity)}",
                      _gib(host.memory_free), f"{host.cpus_used:g}/{host.cpu_capacity:g}", str(host.previews),
                      str(host.claims), "yes" if host.disk_limit else "no", _days(days), str(len(host.foreign)))
    console.print(table)
    console.print(f"certificates: CA {_days(certificates.get('ca'))} days, backend client "
                  f"{_days(certificates.get('client'))} days (renew with `invoke pki.rotate` before "
                  f"{RENEW_BELOW_DAYS} days left)")
    if not all(h.disk_limit for h in hosts if h.reachable):
        required = fleet.runtime.disk_limit == "required"
        console.print("disk limit: the writable layer is size-limited only on overlay2 over XFS with pquota"
                      + (" (required by this fleet: hosts without it take no previews)" if required else ""))
    for host in hosts:
        for item in host.foreign:
            console.print(f"[yellow]foreign[/yellow] {host.name}/{item.name} ({item.id[:12]}): {item.reason} "
                          "(ignored by the runtime; its memory label is counted)")
    down = [h.name for h in hosts if not h.reachable]
    expiring = sorted(k for k, v in certificates.items() if v is not None and v < RENEW_BELOW_DAYS)
    if down:
        fail(f"unreachable: {', '.join(down)}")
    if expiring:
        fail(f"certificates with fewer than {RENEW_BELOW_DAYS} days left: {', '.join(expiring)}")


RENEW_BELOW_DAYS = 30


def _days(days: int | None) -> str:
    if days is None:
        return "?"
    return f"[red]{days}[/red]" if days < RENEW_BELOW_DAYS else str(days)


def certificate_days(fleet: FleetConfig, engines: Fleet) -> dict[str, int | None]:
    """Days left on the certificates in use: each host's *served* certificate (read from a TLS handshake with the
    engine, as the backend makes it: what the host presents, not what the PKI directory holds), the backend's client
    certificate and the CA (from the environment's PKI directory, ``drape_fleet.pki.paths``). None: not read."""
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    from cryptography import x509

    from drape_fleet.pki.paths import ca_files, client_tls_files, pki_dir

    directory = pki_dir(fleet.environment.name)
    now = datetime.now(UTC)

    def left(pem_or_der: bytes) -> int:
        cert = (x509.load_pem_x509_certificate(pem_or_der) if pem_or_der.startswith(b"-----")
                else x509.load_der_x509_certificate(pem_or_der))
        return (cert.not_valid_after_utc - now).days

    def from_file(path: Path) -> int | None:
        return left(path.read_bytes()) if path.is_file() else None

    ca, cert, key = client_tls_files(directory)

    def served(name: str) -> int | None:
        endpoint = engines[name].endpoint
        if endpoint.tls is None or not endpoint.base_url.startswith("tcp://"):
            return None
        address, _, port = endpoint.base_url.removeprefix("tcp://").rpartition(":")
        context = ssl.create_default_context(cafile=str(ca))
        context.check_hostname = False  # the certificate names the private address; the CA is what is checked
        context.load_cert_chain(str(cert), str(key))
        try:
            with socket.create_connection((address.strip("[]"), int(port)), timeout=3) as raw, \
                    context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        except OSError:
            return None
        return left(der) if der else None

    with ThreadPoolExecutor(max_workers=max(1, len(fleet.host_names))) as pool:
        days: dict[str, int | None] = dict(zip(fleet.host_names, pool.map(served, fleet.host_names), strict=True))
    days["client"] = from_file(cert)
    days["ca"] = from_file(ca_files(directory)[0])
    return days


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
