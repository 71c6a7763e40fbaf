"""What every host runs for monitoring (pure): node_exporter from the distribution's package, listening only on
the host's private address, and the textfile collectors (files/monitoring/drape-node-metrics) on systemd timers.

node_exporter covers CPU, memory, filesystems and inodes per volume, RAID arrays (its md collector reads
/proc/mdstat) and time drift (timex). The collectors add what it cannot read: the Docker engine and its
containers by state, pending security updates and "reboot required", NVMe SMART health (hosts with disks), and
the expiry of the Docker API's certificates.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config import FleetConfig
from drape_fleet.config.monitoring import MonitoringSettings, seconds
from drape_fleet.monitoring.plan import host_port, require_monitoring
from drape_fleet.provision import daemon
from drape_fleet.provision.render import render

PACKAGES = ("prometheus-node-exporter",)
NODE_EXPORTER_BINARY = "/usr/bin/prometheus-node-exporter"
NODE_EXPORTER_UNIT = "prometheus-node-exporter.service"
NODE_EXPORTER_DROP_IN = f"/etc/systemd/system/{NODE_EXPORTER_UNIT}.d/10-drape.conf"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
"""The Debian/Ubuntu package's textfile directory (created by the package)."""
PROCFS_VIEW = "/var/lib/drape/procfs"
COLLECTOR_SCRIPT = "/usr/local/sbin/drape-node-metrics"
COLLECTOR_SCRIPT_FILE = "monitoring/drape-node-metrics"
PROCFS_VIEW_SCRIPT = "/usr/local/sbin/drape-procfs-view"
PROCFS_VIEW_SCRIPT_FILE = "monitoring/drape-procfs-view"
UNIT_DIR = "/etc/systemd/system"

MOUNT_POINTS_EXCLUDE = "^/(dev|proc|run|sys|mnt|media|snap|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
"""Not volumes ops fill: kernel and runtime filesystems, removable media, and Docker's per-container layers
(/var/lib/docker itself is watched)."""


@dataclass(frozen=True)
class Collector:
    name: str
    description: str
    interval: str
    args: tuple[str, ...] = ()
    timeout_s: int = 20

    @property
    def service(self) -> str:
        return f"drape-node-metrics-{self.name}.service"

    @property
    def timer(self) -> str:
        return f"drape-node-metrics-{self.name}.timer"

    @property
    def interval_s(self) -> float:
        return seconds(self.interval)


def _unit_arg(value: str) -> str:
    """A literal argument in a unit file: systemd expands ``$`` and ``%``, so they are doubled."""
    return value.replace("%", "%%").replace("$", "$$")


def node_exporter_args(fleet: FleetConfig, host_name: str) -> tuple[str, ...]:
    monitoring = require_monitoring(fleet)
    host = fleet.host(host_name)
    args = [
        f"--web.listen-address={host_port(host.private_address, monitoring.exporters.node_exporter_port)}",
        f"--collector.textfile.directory={TEXTFILE_DIR}",
        f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}",
    ]
    if monitoring.exporters.procfs_view:
        args.append(f"--path.procfs={PROCFS_VIEW}")
    return tuple(args)


def node_exporter_drop_in(fleet: FleetConfig, host_name: str) -> str:
    monitoring = require_monitoring(fleet)
    return render("monitoring/node-exporter.conf.j2", binary=NODE_EXPORTER_BINARY,
                  args=[_unit_arg(a) for a in node_exporter_args(fleet, host_name)],
                  procfs_view=PROCFS_VIEW if monitoring.exporters.procfs_view else None,
                  procfs_view_script=PROCFS_VIEW_SCRIPT)


def collectors(fleet: FleetConfig) -> tuple[Collector, ...]:
    """The textfile collectors a host of this fleet runs: SMART only where there are disks to watch."""
    settings: MonitoringSettings = require_monitoring(fleet)
    intervals = settings.collectors
    docker_timeout = max(1, min(10, int(seconds(intervals.docker_interval))))
    found = [
        Collector("docker", "the Docker engine and its containers", intervals.docker_interval,
                  timeout_s=docker_timeout),
        Collector("updates", "pending upgrades and reboot required", intervals.updates_interval, timeout_s=120),
        Collector("tls", "the Docker API certificates' expiry", intervals.tls_interval,
                  args=(f"--cert=ca={daemon.TLS_CA}", f"--cert=server={daemon.TLS_CERT}")),
    ]
    if fleet.provisioning.storage.disk_monitoring:
        found.append(Collector("smart", "NVMe SMART health", intervals.smart_interval, timeout_s=60))
    return tuple(found)


def collector_service(collector: Collector) -> str:
    return render("monitoring/drape-node-metrics.service.j2", collector=collector, script=COLLECTOR_SCRIPT,
                  textfile_dir=TEXTFILE_DIR)


def collector_timer(collector: Collector) -> str:
    return render("monitoring/drape-node-metrics.timer.j2", collector=collector)
