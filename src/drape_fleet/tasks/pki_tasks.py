"""`invoke pki.init`, `invoke pki.issue` and `invoke pki.rotate`: the Docker API's CA and certificates."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, fail, say
from drape_fleet.pki.authority import PkiError, init_ca, issue_client, issue_host, migrate_layout
from drape_fleet.pki.paths import client_tls_files
from drape_fleet.pki.rotation import finish_rotation, promote_next_ca, start_new_ca, trusted_count
from drape_fleet.provision.preflight import ProvisionRefused
from drape_fleet.provision.rollout import RolloutStopped, roll_out
from drape_fleet.tasks.common import ENV_HELP, environment_of, hosts_of


@task(help={"env": ENV_HELP})
def init(c: Context, env: str = "") -> None:
    """Create the CA (once) and the backend's client certificate; keys stay private (mode 600)."""
    chosen = environment_of(env)
    directory = chosen.pki_dir
    try:
        for line in migrate_layout(directory):
            say(f"pki layout: {line}")
        ca, created = init_ca(directory, allow_in_repo=chosen.is_lab)
        client = issue_client(directory)
    except PkiError as exc:
        fail(str(exc))
    say(f"CA {'created' if created else 'already there'}: {ca}")
    _, cert, key = client_tls_files(directory)
    say(f"backend client certificate {'issued' if client.created else 'up to date'}: {cert} (key {key})")
    console.print(f"[green]pki ready[/green] in {directory}: next, `invoke pki.issue --host NAME` (or `invoke "
                  "provision`, which issues missing host certificates); the backend needs only "
                  f"{cert.parent}")


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


@task(help={"new_ca": "replace the CA too (both trusted until --finish)",
            "finish": "after a --new-ca rotation, once every backend runs with the new client certificate: "
                      "trust only the new CA", "env": ENV_HELP})
def rotate(c: Context, new_ca: bool = False, finish: bool = False, env: str = "") -> None:
    """Replace the Docker API's server and client certificates on every host, one host at a time, without
    taking the fleet down (dockerd restarts with live-restore; old and new stay trusted during the change)."""
    target, hosts = hosts_of(env, [], True)
    directory = target.env.pki_dir

    def leaves() -> None:
        for entry in hosts:
            issue_host(directory, entry.name, [str(entry.private_address), str(entry.public_address)], renew=True)
        issue_client(directory, renew=True)
        say("issued new server certificates for every host and a new backend client certificate")

    try:
        for line in migrate_layout(directory):
            say(f"pki layout: {line}")
        if finish:
            finish_rotation(directory)
            say("trust bundle: the new CA only")
            roll_out(target, hosts, note=say)
        elif new_ca:
            start_new_ca(directory)
            say(f"next CA made; trust bundle: {trusted_count(directory)} CAs (hosts and the backend trust both)")
            roll_out(target, hosts, note=say)
            retired = promote_next_ca(directory)
            say(f"the new CA signs from now on (the old one kept in {retired})")
            leaves()
            roll_out(target, hosts, note=say)
        else:
            leaves()
            roll_out(target, hosts, note=say)
    except (PkiError, RolloutStopped, ProvisionRefused) as exc:
        fail(str(exc))
    _, cert, _ = client_tls_files(directory)
    console.print(f"[green]rotated[/green]: every host serves its new certificate. Restart the backend's processes "
                  f"so they present the new client certificate ({cert})"
                  + ("; then `invoke pki.rotate --finish` to stop trusting the old CA" if new_ca else ""))
