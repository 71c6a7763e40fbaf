"""The monitoring server (the host the fleet file's [monitoring] server names; nothing happens on the others):
Prometheus and Alertmanager from the distribution's packages, on 127.0.0.1 only, with scrape targets generated
from the inventory, the alert rules and Alertmanager's routes generated from the fleet file, the receivers'
secrets from the secrets store, retention sized for the fleet, and the consoles (dashboards) of
files/monitoring/consoles.

Refuses before changing anything: no [monitoring] section, a receiver whose secret is missing from the secrets
store, and pyinfra's --diff (it would print the receivers' secrets). Configuration is written as candidates,
checked with promtool and amtool, and only then installed and reloaded.

Alone: `pyinfra inventories/lab.py deploys/monitoring_server.py`.
"""

import hashlib
import shlex

from pyinfra import host, state
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd

from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.monitoring import server as builders
from drape_fleet.monitoring.facts import Sha256Sums
from drape_fleet.monitoring.plan import MonitoringRefused, monitoring_plan
from drape_fleet.monitoring.receivers import monitoring_secrets
from drape_fleet.paths import project_root
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text

CONFIG, CANDIDATE = builders.CONFIG_DIR, builders.CANDIDATE_DIR


@deploy("monitoring_server")
def monitoring_server() -> None:
    ctx = deploy_context(host)
    try:
        plan = monitoring_plan(ctx.fleet, str(ctx.fleet_file))
    except MonitoringRefused as exc:
        raise DeployError(str(exc)) from None
    if ctx.me.name != plan.server.name:
        return
    if state.config.DIFF:
        raise DeployError("the monitoring server's files hold the receivers' secrets, which --diff would print: "
                          "run it without --diff (nothing was changed)")
    try:
        secrets = monitoring_secrets(plan.settings, load_secrets(repo_root=project_root()))
    except ConfigError as exc:
        raise DeployError(f"{exc}\nNothing was changed on {ctx.me.name}.") from None

    apt.packages(name="Prometheus and Alertmanager", packages=list(builders.PACKAGES), update=True,
                 cache_time=3600, no_recommends=True)
    for directory, group, mode in ((CONFIG, "root", "755"), (CANDIDATE, builders.GROUP, "750"),
                                   (f"{CONFIG}/rules", "root", "755"), (f"{CONFIG}/secrets", builders.GROUP, "750"),
                                   (builders.CONSOLES_DIR, "root", "755"),
                                   (builders.CONSOLE_LIBRARIES_DIR, "root", "755")):
        files.directory(name=f"{directory}", path=directory, user="root", group=group, mode=mode)

    rendered = builders.server_files(plan, secrets)
    validated = [f for f in rendered if f.validated]
    for item in rendered:
        dest = f"{CANDIDATE if item.validated else CONFIG}/{item.path}"
        put_text(f"{item.path}{' (secrets)' if item.secret else ''}{' candidate' if item.validated else ''}",
                 item.text, dest, mode="640" if item.secret else "644", group=builders.GROUP if item.secret else "root")
    # Compared with what is installed now (not with the candidates, which are uploaded later in the same run).
    installed_sums = host.get_fact(Sha256Sums, paths=[f"{CONFIG}/{f.path}" for f in validated])
    installed = None
    if any(installed_sums.get(f"{CONFIG}/{f.path}") != hashlib.sha256(f.text.encode()).hexdigest()
           for f in validated):
        installed = server.shell(
            name="Configuration checked with promtool and amtool, then installed",
            commands=[f"promtool check config {CANDIDATE}/{builders.PROMETHEUS_YML}",
                      f"amtool check-config {CANDIDATE}/{builders.ALERTMANAGER_YML}",
                      *(f"install -D -m {'640' if f.secret else '644'} -o root "
                        f"-g {builders.GROUP if f.secret else 'root'} {shlex.quote(f'{CANDIDATE}/{f.path}')} "
                        f"{shlex.quote(f'{CONFIG}/{f.path}')}" for f in validated)])
    for name in builders.CONSOLES:
        put_file(f"Console {name}", f"monitoring/consoles/{name}", f"{builders.CONSOLES_DIR}/{name}")
    put_file("Console library", f"monitoring/console_libraries/{builders.CONSOLE_LIBRARY}",
             f"{builders.CONSOLE_LIBRARIES_DIR}/{builders.CONSOLE_LIBRARY}")

    units = (("Prometheus", builders.PROMETHEUS_UNIT, builders.PROMETHEUS_BINARY, builders.prometheus_args(plan)),
             ("Alertmanager", builders.ALERTMANAGER_UNIT, builders.ALERTMANAGER_BINARY,
              builders.alertmanager_args(plan)))
    drop_ins = {unit: put_text(f"{what} on 127.0.0.1 with our configuration",
                               builders.service_drop_in(what, binary, args), builders.drop_in_path(unit))
                for what, unit, binary, args in units}
    systemd.daemon_reload(name="systemd reads the monitoring server's drop-ins",
                          _if=lambda: any(op.did_change() for op in drop_ins.values()))
    for what, unit, _, _ in units:
        drop_in = drop_ins[unit]
        server.shell(name=f"{what} restarted with its new arguments", commands=[f"systemctl restart {unit}"],
                     _if=drop_in.did_change)
        if installed is not None:
            reload_op = installed
            server.shell(name=f"{what} reloads its configuration", commands=[f"systemctl reload {unit}"],
                         _if=lambda op=reload_op, d=drop_in: op.did_change() and not d.did_change())
        systemd.service(name=f"{what} running and enabled", service=unit, running=True, enabled=True)


monitoring_server()
