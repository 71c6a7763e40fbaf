"""`invoke ingress.dns | ingress.link`: the preview URLs' DNS records and a signed link to one preview
(drape_fleet.ingress). The ingress itself is a deploy: `invoke provision --only ingress`."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.config import ConfigError
from drape_fleet.config.secrets import load_secrets
from drape_fleet.console import console, fail
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.hetzner.dns_plan import DnsError
from drape_fleet.ingress.credentials import IngressRefused, ingress_settings, link_key
from drape_fleet.ingress.dns import apply_all, host_targets, plan_all
from drape_fleet.ingress.links import preview_link, preview_url
from drape_fleet.paths import project_root
from drape_fleet.tasks.common import ENV_HELP, target_of


@task(help={"apply": "make the changes (without it: only show them)", "env": ENV_HELP})
def dns(c: Context, apply: bool = False, env: str = "") -> None:
    """Point *.<host>.<preview domain> at each preview host's public addresses (Hetzner Cloud DNS): a dry run
    unless --apply; a second run changes nothing."""
    target = target_of(env)
    try:
        settings = ingress_settings(target)
        targets = host_targets(target.fleet, settings)
        client = CloudDns.for_fleet(target.fleet, load_secrets(repo_root=project_root()))
        plans = plan_all(client, targets)
    except (ConfigError, DnsError) as exc:
        fail(str(exc))
    for plan in plans:
        for line in plan.lines():
            console.print(f"  {line}")
    changed = [plan for plan in plans if plan.changed]
    if not changed:
        console.print("[green]preview DNS is as it should be[/green]: nothing to change")
        return
    if not apply:
        console.print(f"(dry run: {len(changed)} record set(s) would change; run again with --apply)")
        return
    try:
        apply_all(client, changed)
    except DnsError as exc:
        fail(str(exc))
    console.print(f"[green]preview DNS updated[/green]: {len(changed)} record set(s)")


@task(help={"workspace": "the workspace", "user": "its user", "host": "the host its preview runs on",
            "path": "where the link leads (default /)", "env": ENV_HELP})
def link(c: Context, workspace: str, user: str, host: str, path: str = "/", env: str = "") -> None:
    """Print a signed one-time link to a workspace's preview, as the backend hands one out (it opens within
    link_ttl_s)."""
    target = target_of(env)
    try:
        settings = ingress_settings(target)
        target.fleet.host(host)
        key = link_key(target)
    except (ConfigError, IngressRefused, KeyError) as exc:
        fail(str(exc))
    console.print(preview_url(workspace, settings.host_domain(host), settings.https_port))
    console.print(preview_link(key, workspace=workspace, user=user, host=host, host_domain=settings.host_domain(host),
                               ttl_s=settings.link_ttl_s, next_path=path, https_port=settings.https_port),
                  soft_wrap=True)
