"""Monitoring on every host: node_exporter (the distribution's package) listening only on the private address,
where the firewall admits the monitoring server alone, and the textfile collectors on timers (the Docker engine
and its containers, pending updates and reboot required, the Docker API certificates' expiry, and NVMe SMART
health where there are disks). The monitoring server's own role is deploys/monitoring_server.py.

Refuses, before changing anything, a fleet file without a [monitoring] section (it shows one to copy).

Alone: `pyinfra inventories/lab.py deploys/monitoring.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.monitoring import exporters as builders
from drape_fleet.monitoring.plan import MonitoringRefused, require_monitoring
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text


@deploy("monitoring")
def host_monitoring() -> None:
    ctx = deploy_context(host)
    try:
        monitoring = require_monitoring(ctx.fleet, str(ctx.fleet_file))
    except MonitoringRefused as exc:
        raise DeployError(str(exc)) from None

    apt.packages(name="node_exporter (and openssl for the certificate collector)",
                 packages=[*builders.PACKAGES, "openssl"], update=True, cache_time=3600, no_recommends=True)
    script = put_file("Textfile collectors script", builders.COLLECTOR_SCRIPT_FILE, builders.COLLECTOR_SCRIPT,
                      mode="755")
    changed = [put_text("node_exporter on the private address only",
                        builders.node_exporter_drop_in(ctx.fleet, ctx.me.name), builders.NODE_EXPORTER_DROP_IN)]
    if monitoring.exporters.procfs_view:
        changed.append(put_file("/proc view for node_exporter (lab: no md driver)", builders.PROCFS_VIEW_SCRIPT_FILE,
                                builders.PROCFS_VIEW_SCRIPT, mode="755"))
    collectors = builders.collectors(ctx.fleet)
    units = []
    for collector in collectors:
        units.append(put_text(f"Collector {collector.name}: service", builders.collector_service(collector),
                              f"{builders.UNIT_DIR}/{collector.service}"))
        units.append(put_text(f"Collector {collector.name}: timer (every {collector.interval})",
                              builders.collector_timer(collector), f"{builders.UNIT_DIR}/{collector.timer}"))
    systemd.daemon_reload(name="systemd reads the monitoring units", _if=any_changed(*changed, *units))
    server.shell(name="node_exporter restarted with its arguments",
                 commands=[f"systemctl restart {builders.NODE_EXPORTER_UNIT}"], _if=any_changed(*changed))
    systemd.service(name="node_exporter running and enabled", service=builders.NODE_EXPORTER_UNIT, running=True,
                    enabled=True)
    for collector in collectors:
        systemd.service(name=f"Collector {collector.name} timer on", service=collector.timer, running=True,
                        enabled=True)
    server.shell(name="Collectors run now", commands=[f"systemctl start {c.service}" for c in collectors],
                 _if=any_changed(script, *units))


host_monitoring()
