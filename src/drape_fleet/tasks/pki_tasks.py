"""`invoke pki.init` and `invoke pki.issue`: the Docker API's CA and certificates."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, fail, say
from drape_fleet.pki.authority import PkiError, init_ca, issue_client, issue_host
from drape_fleet.pki.paths import client_tls_files
from drape_fleet.tasks.common import ENV_HELP, environment_of, hosts_of


@task(help={"env": ENV_HELP})
def init(c: Context, env: str = "") -> None:
    """Create the CA (once) and the backend's client certificate; keys stay private (mode 600)."""
    chosen = environment_of(env)
    directory = chosen.pki_dir
    try:
        ca, created = init_ca(directory, allow_in_repo=chosen.is_lab)
        client = issue_client(directory)
    except PkiError as exc:
        fail(str(exc))
    say(f"CA {'created' if created else 'already there'}: {ca}")
    _, cert, key = client_tls_files(directory)
    say(f"backend client certificate {'issued' if client.created else 'up to date'}: {cert} (key {key})")
    console.print(f"[green]pki ready[/green] in {directory}: next, `invoke pki.issue --host NAME` (or `invoke "
                  "provision`, which issues missing host certificates)")


@task(help={"host": "host to issue a server certificate for (repeatable)", "all": "every host",
            "renew": "issue a new certificate even if the current one is fine", "env": ENV_HELP},
      iterable=["host"])
def issue(c: Context, host: list[str] | None = None, all: bool = False, renew: bool = False, env: str = "") -> None:
    """Issue a host's Docker API server certificate (SAN: private address, public address, host name)."""
    target, hosts = hosts_of(env, host or [], all)
    directory = target.env.pki_dir
    for entry in hosts:
        try:
            issued = issue_host(directory, entry.name, [str(entry.private_address), str(entry.public_address)],
                                renew=renew)
        except PkiError as exc:
            fail(str(exc))
        state = f"issued ({issued.reason})" if issued.created else "up to date"
        say(f"{entry.name}: {state}: {issued.cert}")
    console.print("[green]done[/green]: run `invoke provision --only docker` to install new certificates")
