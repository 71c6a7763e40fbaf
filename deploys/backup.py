"""Scheduled, encrypted backups of this host's items with restic (docs/backups.md).

restic from the distribution; the agent (files/backup/drape-backup.py) and its plan; the repository password
(root-only, derived from the escrowed passphrase: drape_fleet.backup.keys); an SSH key made on the host, which
never leaves it (`invoke backup.init` authorizes it on the target); the target's host key pinned (no
accept-new); hourly and daily timers for the backup and the restore drill. Nothing happens without a
[backup] section in the fleet file.

Alone: `pyinfra inventories/lab.py deploys/backup.py`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from pyinfra import host, logger, state
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.backup import host_files, keys, plan
from drape_fleet.environments import environment
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text


@contextmanager
def _no_diff() -> Iterator[None]:
    """`pyinfra --diff` prints what a changed file will hold: never for the password file."""
    shown = state.config.DIFF
    state.config.DIFF = False
    try:
        yield
    finally:
        state.config.DIFF = shown


@deploy("backup")
def backup() -> None:
    ctx = deploy_context(host)
    if ctx.fleet.backup is None:
        host.noop("no [backup] section in the fleet file: nothing to back up")
        return
    target = ctx.fleet.backup.target
    pinned = plan.known_hosts_path(ctx.fleet_file, target)
    if not pinned.is_file():
        raise DeployError(f"{pinned}: the backup target's host key is not pinned yet. Fix: `invoke backup.trust` "
                          "(production: with --fingerprint from the provider)")
    env = environment(ctx.environment)
    try:
        password = keys.repository_password(keys.passphrase(env), ctx.environment, ctx.me.name)
    except keys.BackupKeyError as exc:
        raise DeployError(str(exc)) from None

    apt.packages(name="restic, ssh client and python3 (the agent)", packages=["restic", "openssh-client", "python3"],
                 update=True, cache_time=24 * 3600)
    files.directory(name=f"{plan.HOST_DIR}: root only", path=plan.HOST_DIR, user="root", group="root", mode="700")
    with _no_diff():
        put_text("Repository password (root only, never shown)", password + "\n", plan.PASSWORD_FILE, mode="400")
    put_text("The target's pinned host key", host_files.known_hosts_text(pinned.read_text()), plan.HOST_KNOWN_HOSTS)
    put_text("Plan: items, target, retention", host_files.plan_json(ctx.fleet, ctx.me.name), plan.PLAN_FILE,
             mode="600")
    put_file("Agent", host_files.AGENT_FILE, plan.AGENT, mode="755")
    cache = ctx.fleet.provisioning.cache
    files.file(name="The store's writer lock (the warm job, prune and the backup take it)",
               path=f"{cache.store_path}/.warm.lock", user=cache.owner, group=cache.owner, mode="644")
    if not host.get_fact(File, path=plan.HOST_KEY):
        server.shell(name="This host's backup key (made here, never copied)",
                     commands=[f"ssh-keygen -q -t ed25519 -N '' -C drape-backup@{ctx.me.name} -f {plan.HOST_KEY}"])
        logger.info(f"{host.print_prefix}backup: new backup key; run `invoke backup.init` to authorize it")

    units = "/etc/systemd/system"
    changed = [put_text(f"Unit {name}", host_files.unit(name), f"{units}/{name}")
               for name in host_files.UNITS]
    systemd.daemon_reload(name="systemd reads the backup units", _if=any_changed(*changed))
    for timer in ("drape-backup.timer", "drape-backup-drill.timer"):
        systemd.service(name=f"{timer} on", service=timer, running=True, enabled=True)


backup()
