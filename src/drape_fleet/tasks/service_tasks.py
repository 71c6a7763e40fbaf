"""`invoke service.urls | service.status | service.token | service.tokens | service.revoke | service.pki`.

The runtime service (docs/service.md) as ops see it: where the backend reaches it, whether every instance is
ready, and the bearer tokens of its callers (kept in the environment's secrets store, pushed to the hosts as
digests by `invoke provision --only service`). Every task takes ``--env``.
"""

from __future__ import annotations

import json

import requests
from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config import ConfigError
from drape_fleet.config.service import SCOPES
from drape_fleet.console import console, fail, say
from drape_fleet.pki.authority import PkiError
from drape_fleet.service.auth import token_digest
from drape_fleet.service_deploy import host as layout
from drape_fleet.service_deploy.certificates import ingress_ca, init_ingress_ca
from drape_fleet.service_deploy.tokens import add_token, load_store, store_path
from drape_fleet.service_deploy.tokens import revoke as revoke_tokens
from drape_fleet.tasks.common import ENV_HELP, environment_of, target_of


@task(help={"env": ENV_HELP, "json": "print {urls, ca} as JSON (for scripts and the Node backend's settings)"})
def urls(c: Context, env: str = "", json_: bool = False) -> None:
    """Where the backend reaches the service: every instance's URL, and the CA to trust for them."""
    fleet = target_of(env).fleet
    found = layout.base_urls(fleet)
    if not found:
        fail("this fleet has no \\[service] section: no host runs the runtime service (see docs/service.md)")
    ca = ingress_ca(fleet.environment.name)
    if json_:
        print(json.dumps({"urls": found, "ca": str(ca)}))
        return
    for url in found:
        console.print(url)
    say(f"trust {ca} (Node: NODE_EXTRA_CA_CERTS={ca}); DRAPE_RUNTIME_URLS={','.join(found)}")


@task(help={"env": ENV_HELP})
def status(c: Context, env: str = "") -> None:
    """Each instance's /healthz and /readyz: the process answers, and which engines it reaches."""
    fleet = target_of(env).fleet
    ca = ingress_ca(fleet.environment.name)
    table = Table(title=f"runtime service ({fleet.environment.name})")
    for column in ("instance", "process", "ready", "engines"):
        table.add_column(column)
    failing = []
    for url in layout.base_urls(fleet):
        try:
            health = requests.get(f"{url}/healthz", verify=str(ca), timeout=5).json()
            ready = requests.get(f"{url}/readyz", verify=str(ca), timeout=10)
            engines = ready.json().get("engines", {})
            table.add_row(url, f"ok ({health['instance']})", ready.json().get("status", "?"),
                          " ".join(f"{name}:{'ok' if up else '[red]down[/red]'}" for name, up in engines.items()))
            if ready.status_code != 200:
                failing.append(url)
        except (requests.RequestException, ValueError, KeyError) as exc:
            table.add_row(url, f"[red]{str(exc)[:80]}[/red]", "-", "-")
            failing.append(url)
    console.print(table)
    if failing:
        fail(f"not ready: {', '.join(failing)}")


@task(help={"caller": "who uses the token (e.g. backend, monitoring)",
            "scopes": f"comma-separated, of {', '.join(SCOPES)} (default previews)", "env": ENV_HELP})
def token(c: Context, caller: str, scopes: str = "previews", env: str = "") -> None:
    """Issue a new bearer token for CALLER (its older ones stay valid until revoked: rotation without downtime)."""
    environment = environment_of(env)
    try:
        made = add_token(store_path(environment.name), caller, [s.strip() for s in scopes.split(",") if s.strip()],
                         allow_in_repo=environment.is_lab)
    except (ValueError, ConfigError) as exc:
        fail(str(exc))
    console.print(made.token, highlight=False, soft_wrap=True)
    say(f"new token for {caller} ({', '.join(made.scopes)}), stored in {store_path(environment.name)}. Give it to "
        f"the caller (e.g. `fly secrets set DRAPE_RUNTIME_TOKEN=...`), then `invoke provision --all --only service "
        f"--env {environment.name}`; revoke the old one afterwards with `invoke service.revoke --caller {caller} "
        "--keep-newest`")


@task(help={"env": ENV_HELP})
def tokens(c: Context, env: str = "") -> None:
    """The callers and their tokens' ages and scopes (never the tokens)."""
    environment = environment_of(env)
    try:
        store = load_store(store_path(environment.name), allow_in_repo=environment.is_lab)
    except ConfigError as exc:
        fail(str(exc))
    table = Table(title=f"runtime service tokens ({environment.name})")
    for column in ("caller", "scopes", "created", "sha256 (as the hosts know it)"):
        table.add_column(column)
    for entry in sorted(store.tokens, key=lambda t: (t.caller, t.created)):
        table.add_row(entry.caller, ", ".join(entry.scopes), f"{entry.created:%Y-%m-%d %H:%M}",
                      token_digest(entry.token)[:16] + "…")
    console.print(table)


@task(help={"caller": "whose tokens", "keep_newest": "keep the caller's newest token (the end of a rotation)",
            "env": ENV_HELP})
def revoke(c: Context, caller: str, keep_newest: bool = False, env: str = "") -> None:
    """Revoke CALLER's tokens (all, or all but the newest); the hosts drop them at the next service deploy."""
    environment = environment_of(env)
    try:
        dropped = revoke_tokens(store_path(environment.name), caller, keep_newest=keep_newest,
                                allow_in_repo=environment.is_lab)
    except (ValueError, ConfigError) as exc:
        fail(str(exc))
    say(f"revoked {len(dropped)} token(s) of {caller}; now `invoke provision --all --only service "
        f"--env {environment.name}`")


@task(help={"env": ENV_HELP})
def pki(c: Context, env: str = "") -> None:
    """Make the ingress CA once (production; the lab makes its own): it signs only the service's HTTPS."""
    environment = environment_of(env)
    try:
        path, created = init_ingress_ca(environment.name, allow_in_repo=environment.is_lab)
    except PkiError as exc:
        fail(str(exc))
    say(f"{'made' if created else 'kept'} the ingress CA {path}: callers trust this file (NODE_EXTRA_CA_CERTS)")
