"""What monitoring looks like for one fleet (pure): the monitoring server, every scrape job and its targets
(generated from the inventory: each host's exporters on its private address), and the retention that fits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from drape_fleet.config import FleetConfig, Host
from drape_fleet.config.monitoring import MonitoringSettings, ServiceJob, retention_bytes

CONFIG_DIR = "/etc/prometheus/drape"
"""Where the monitoring server keeps our configuration (drape_fleet.monitoring.server)."""
RETENTION_HEADROOM = 1.5
"""The size limit is the estimate plus half again: compaction needs room, and the estimate is an estimate."""

EXAMPLE_SECTION = """[monitoring]
server = "ax3"                 # the host that runs Prometheus and Alertmanager
default_receiver = "ops-mail"

[[monitoring.receivers]]
name = "ops-mail"
kind = "email"
to = "ops@example.com"
sender = "alerts@example.com"
smarthost = "smtp.example.com:587"
username = "alerts@example.com"
secret = "ops_smtp_password"   # the password itself goes in the secrets store

[[monitoring.receivers]]
name = "heartbeat"
kind = "webhook"
secret = "heartbeat_url"       # an outside dead man's switch that pages when the pings stop

[monitoring.watchdog]
receiver = "heartbeat\""""


class MonitoringRefused(ValueError):
    """The fleet cannot be monitored as configured; the message says how to fix it. Nothing was touched."""


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    """``host:port`` (``[v6]:port``), as Prometheus writes targets."""


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: tuple[Target, ...]
    path: str = "/metrics"
    scheme: str = "http"
    bearer_file: str | None = None
    """Where the job's bearer token lies on the monitoring server (written by the deploy), if it needs one."""
    honor_labels: bool = False
    """A service's own ``host`` label (the host a figure is about, e.g. ``drape_host_memory_free_bytes``) wins over
    the target's (the host that answered, still in ``instance``)."""


@dataclass(frozen=True)
class MonitoringPlan:
    settings: MonitoringSettings
    server: Host
    environment: str
    jobs: tuple[ScrapeJob, ...]
    retention_days: int
    retention_gib: int
    clock_synced_here: bool = True
    """Whether the hosts discipline their own clocks (a lab stand-in shares this machine's kernel and clock)."""

    @property
    def alertmanager_address(self) -> str:
        return f"127.0.0.1:{self.settings.alertmanager.port}"

    @property
    def prometheus_address(self) -> str:
        return f"127.0.0.1:{self.settings.prometheus_port}"

    def job(self, name: str) -> ScrapeJob:
        return next(job for job in self.jobs if job.name == name)


def host_port(address: IPv4Address | IPv6Address | str, port: int) -> str:
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def bearer_path(job: ServiceJob) -> str:
    return f"{CONFIG_DIR}/secrets/{job.name}.token"


def require_monitoring(fleet: FleetConfig, source: str = "the fleet file") -> MonitoringSettings:
    """The fleet's ``[monitoring]`` section, or a refusal that shows what to write."""
    if fleet.monitoring is None:
        raise MonitoringRefused(
            f"{source} has no [monitoring] section, so no host is named to run Prometheus and Alertmanager. "
            f"Fix: add one naming a host of this fleet ({', '.join(fleet.host_names)}), e.g.\n\n{EXAMPLE_SECTION}")
    return fleet.monitoring


def monitoring_plan(fleet: FleetConfig, source: str = "the fleet file") -> MonitoringPlan:
    settings = require_monitoring(fleet, source)
    server = fleet.host(settings.server)  # the loader checked it is one of the hosts
    port = settings.exporters.node_exporter_port
    jobs = [ScrapeJob("node", tuple(Target(h.name, host_port(h.private_address, port)) for h in fleet.hosts))]
    jobs += [ScrapeJob(job.name, tuple(Target(h.name, host_port(h.private_address, job.port)) for h in fleet.hosts),
                       path=job.path, scheme=job.scheme,
                       bearer_file=bearer_path(job) if job.bearer_secret else None, honor_labels=True)
             for job in settings.services]
    jobs += [ScrapeJob("prometheus", (Target(server.name, f"127.0.0.1:{settings.prometheus_port}"),)),
             ScrapeJob("alertmanager", (Target(server.name, f"127.0.0.1:{settings.alertmanager.port}"),))]
    size = retention_bytes(settings, len(fleet.hosts)) * RETENTION_HEADROOM
    return MonitoringPlan(settings=settings, server=server, environment=fleet.environment.name, jobs=tuple(jobs),
                          retention_days=settings.retention.days, retention_gib=max(1, math.ceil(size / 2**30)),
                          clock_synced_here=fleet.provisioning.base.owns_kernel)
