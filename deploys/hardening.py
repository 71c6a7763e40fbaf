"""The host's hardening baseline (drape_fleet.provision.hardening): process accounting, audit rules for the
container runtime, sshd and the firewall, file integrity (AIDE, initialised here and checked every night),
modules a server never uses, login banners, umask and password policy. Last in the site order, so the
integrity baseline is made (or renewed) after every other deploy has changed what it changes.

On a lab stand-in (a container), auditd cannot run: the kernel's audit subsystem answers only the initial
PID namespace. The rules are still written there; `invoke verify` checks them loaded on a real server.

Alone: `pyinfra inventories/lab.py deploys/hardening.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.facts.system import ContainerKind
from drape_fleet.provision import hardening as builders
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.daemon import engine_packages
from drape_fleet.provision.ops import edit_line, put_file, put_text, record_change, written_files


@deploy("hardening")
def hardening() -> None:
    ctx = deploy_context(host)
    in_container = host.get_fact(ContainerKind) != "none"
    apt.packages(name="Accounting, audit, file integrity, password quality", packages=list(builders.PACKAGES),
                 update=True, cache_time=3600, no_recommends=True)

    systemd.service(name="Process accounting (acct)", service="acct.service", running=True, enabled=True)

    rules = put_text("Audit rules: Docker, sshd, firewall, accounts, time, modules",
                     builders.audit_rules(engine_packages(ctx.fleet, ctx.profile)), builders.AUDIT_RULES_PATH,
                     mode="640")
    systemd.service(name="auditd enabled" + (" (a container cannot run it)" if in_container else " and running"),
                    service="auditd.service", enabled=True, running=None if in_container else True)
    if not in_container:
        server.shell(name="Audit rules loaded", commands=["augenrules --load"], _if=rules.did_change)

    put_text("Unused filesystems, USB storage and protocols cannot load", builders.modprobe_conf(),
             builders.MODPROBE_PATH)
    placed = {name: put_file(f"{dest}", name, dest, mode=mode) for name, (dest, mode) in builders.PLAIN_FILES.items()}
    put_text("Password quality", builders.pwquality_conf(), builders.PWQUALITY_PATH)
    for key, value in builders.LOGIN_DEFS.items():
        # The setting's own line, set or commented out ("#HOME_MODE\t0700"), never the prose that names it
        # (extended regex: grep and sed read it the same way).
        edit_line(name=f"login.defs: {key} {value}", path="/etc/login.defs",
                   line=rf"^#?{key}[[:space:]]+[^[:space:]]+[[:space:]]*$", replace=f"{key}\t{value}",
                   extended_regex=True)
    edit_line(name="Accounts unused for 30 days after their password expired are locked",
               path="/etc/default/useradd", line=r"^#?[[:space:]]*INACTIVE=.*$", replace="INACTIVE=30",
               extended_regex=True)
    for user in (host.get_fact(Command, command=builders.USERS_WITH_LAX_AGING) or "").split():
        record_change(server.shell(name=f"Password aging for {user}", commands=[builders.aging_command(user)]))

    # File integrity: the baseline after everything else; renewed when a deploy of this run changed a file.
    conf = put_text("AIDE configuration", builders.aide_conf(), builders.AIDE_CONF_PATH, mode="600")
    files.directory(name="AIDE database directory", path=builders.AIDE_DATABASE.rsplit("/", 1)[0], mode="700")
    units = [placed[name] for name in builders.PLAIN_FILES if name.endswith((".service", ".timer"))]
    systemd.daemon_reload(name="systemd reads the integrity check units", _if=any_changed(*units))
    systemd.service(name="Nightly integrity check", service=builders.AIDE_TIMER, running=True, enabled=True)
    if host.get_fact(File, path=builders.AIDE_DATABASE) is None:
        server.shell(name="File-integrity baseline made", commands=[f"{builders.AIDE_SCRIPT} init"])
    else:
        server.shell(name="File-integrity baseline renewed (this run changed files)",
                     commands=[f"{builders.AIDE_SCRIPT} accept"], _if=any_changed(conf, *written_files(host)))


hardening()
