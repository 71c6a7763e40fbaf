"""Base system: hostname, UTC, time sync, unattended security upgrades (never rebooting by day), essential
packages, journald retention, sysctls for many dev servers, and the non-root deploy user.

Alone: `pyinfra inventories/lab.py deploys/base.py`.
"""

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command, Hostname, Sysctl
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.facts.system import ContainerKind, FileText
from drape_fleet.provision import base as builders
from drape_fleet.provision.access import (
    ROOT_AUTHORIZED_KEYS,
    authorized_keys_path,
    deploy_home,
    desired_authorized_keys,
)
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text, record_change


@deploy("base")
def base_system() -> None:
    ctx = deploy_context(host)
    settings = ctx.fleet.provisioning
    in_container = host.get_fact(ContainerKind) != "none"

    apt.packages(name="Essential packages", packages=[*ctx.profile.packages.essential, "tzdata"],
                 update=True, cache_time=3600, no_recommends=True)
    if ctx.profile.packages.absent:
        apt.packages(name="Unwanted packages removed", packages=list(ctx.profile.packages.absent),
                     present=False, purge=True)

    if host.get_fact(Hostname) != ctx.me.name:
        server.hostname(name="Hostname", hostname=ctx.me.name)
    timezone = "Etc/UTC" if settings.base.timezone == "UTC" else settings.base.timezone
    server.timezone(name="Time zone", timezone=timezone)

    # A stand-in host shares this machine's clock: timesyncd refuses to run in a container (by its own
    # ConditionVirtualization), so there it is only enabled.
    systemd.service(name="Time sync (systemd-timesyncd)", service="systemd-timesyncd.service",
                    enabled=True, running=None if in_container else True)

    # The security repository (a fresh Debian from debootstrap has none: unattended upgrades would fetch
    # nothing), unless another source already names it (Hetzner's images do).
    if (host.get_fact(Command, command=builders.other_security_sources(ctx.profile)) or "").strip():
        files.file(name="Our security source not needed (another names it)", path=builders.SECURITY_SOURCE_PATH,
                   present=False)
    else:
        source = put_text("The distribution's security repository", builders.security_source(ctx.profile),
                          builders.SECURITY_SOURCE_PATH)
        apt.update(name="apt reads the security repository", _if=source.did_change)

    # Unattended security upgrades, at night, without automatic reboots; the container runtime held back.
    unattended = put_text("Unattended upgrades: security only, no reboot by day",
                          builders.unattended_upgrades_conf(ctx.fleet, ctx.profile), builders.UNATTENDED_PATH)
    periodic = put_file("Unattended upgrades: daily", builders.AUTO_UPGRADES_FILE, builders.AUTO_UPGRADES_PATH)
    timer = put_file("Upgrades run at night", builders.UPGRADE_TIMER_FILE, builders.UPGRADE_TIMER_PATH)
    systemd.daemon_reload(name="systemd reads the upgrade timer", _if=timer.did_change)
    systemd.service(name="Upgrade timer on", service="apt-daily-upgrade.timer", enabled=True, running=True)
    server.shell(name="Upgrade timer restarted for its schedule",
                 commands=["systemctl restart apt-daily-upgrade.timer"], _if=any_changed(unattended, periodic, timer))

    journald = put_text("journald retention", builders.journald_conf(ctx.fleet), builders.JOURNALD_PATH)
    server.shell(name="journald restarted for its retention", commands=["systemctl restart systemd-journald"],
                 _if=journald.did_change)

    values = builders.sysctls(ctx.fleet)
    put_text("sysctl file (applied at boot)", builders.sysctl_file(values), builders.SYSCTL_PATH)
    live = host.get_fact(Sysctl, keys=sorted(values))
    for key, value in sorted(values.items()):
        if str(live.get(key)) != str(value):
            server.sysctl(name=f"sysctl {key}", key=key, value=value)

    # The deploy user: key login and passwordless sudo (its rule is validated before it is installed).
    user = ctx.deploy_user
    server.user(name=f"Deploy user {user}", user=user, shell="/bin/bash", home=deploy_home(user),  # noqa: S604 (login shell)
                create_home=True, ensure_home=True)
    files.directory(name=f"{user}'s ~/.ssh", path=f"{deploy_home(user)}/.ssh", user=user, group=user, mode="700")
    keys = desired_authorized_keys(settings.ssh, host.get_fact(FileText, path=authorized_keys_path(user)),
                                   host.get_fact(FileText, path=ROOT_AUTHORIZED_KEYS))
    if keys is not None:
        put_text(f"{user}'s authorized keys", keys, authorized_keys_path(user), mode="600", user=user, group=user)
    sudoers = builders.SUDOERS_PATH
    rule = builders.sudoers_rule(user)
    if host.get_fact(FileText, path=sudoers) != rule.rstrip("\n"):
        record_change(server.shell(name=f"sudo rule for {user} (checked with visudo first)", commands=[
            f"printf '%s' {shlex.quote(rule)} > {sudoers}.new && chmod 440 {sudoers}.new && visudo -cqf {sudoers}.new "
            f"&& mv -f {sudoers}.new {sudoers} || {{ rm -f {sudoers}.new; exit 1; }}",
        ]))


base_system()
