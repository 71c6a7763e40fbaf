"""The fleet file's ``[monitoring]`` section: which host runs Prometheus and Alertmanager, what they scrape, the
alert thresholds, and where alerts go. Read by the monitoring deploys (drape_fleet.monitoring) and by the
firewall (exporters open only to the monitoring server, on the private address).

Receivers name a *secret* (a webhook's URL, an SMTP password) that lives in the secrets store
(drape_fleet.config.secrets: ``[monitoring]`` in the secrets file, or ``$DRAPE_MONITORING_<NAME>``), never here.
Only the lab, whose receiver is a local server on the private network, may write a webhook ``url`` inline.

Durations use Prometheus's spelling ("30s", "5m", "1h30m", "7d"). Defaults are production's; the lab's fleet
file shortens the intervals and ``for:`` windows so its alert tests finish in seconds::

    [monitoring]
    server = "ax3"
    default_receiver = "ops-mail"

    [[monitoring.receivers]]
    name = "ops-mail"
    kind = "email"
    to = "ops@example.com"
    ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal, Self

from pydantic import AnyHttpUrl, Field, PositiveFloat, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from drape_fleet.config.base import FrozenModel, invalid

_DURATION = re.compile(r"^(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)

Duration = Annotated[str, StringConstraints(pattern=_DURATION.pattern, min_length=2)]
"""A Prometheus duration: ``30s``, ``5m``, ``1h30m``, ``7d``."""
Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[float, Field(gt=0, lt=100)]
ReceiverName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
SecretName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
JobName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,40}$")]
AlertName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]{0,60}$")]
Severity = Literal["critical", "warning"]
StartKind = Literal["cold", "warm", "prewarmed", "hot"]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")]

START_TARGETS_S: dict[StartKind, float] = {"cold": 120.0, "warm": 20.0, "prewarmed": 20.0, "hot": 2.0}
RESERVED_JOBS = ("node", "prometheus", "alertmanager")
"""Scrape jobs the monitoring server always has; services take other names."""


def seconds(duration: str) -> float:
    """``"1h30m"`` -> 5400.0 (the duration was validated when the file was loaded)."""
    match = _DURATION.match(duration)
    if not match or not duration:
        raise ValueError(f"{duration!r} is not a duration like 30s, 5m, 1h30m or 7d")
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part)


class ExporterSettings(FrozenModel):
    node_exporter_port: Port = 9100
    procfs_view: bool = False
    """Lab only: a stand-in host has no md driver and so no /proc/mdstat. node_exporter then reads /proc through a
    view directory (every /proc entry linked, ``mdstat`` free), where a test puts a captured mdstat to prove the
    RAID alerts with node_exporter's own md collector. Real servers read /proc itself."""


class CollectorSettings(FrozenModel):
    """How often the textfile collectors (files/monitoring/drape-node-metrics) run on every host."""

    docker_interval: Duration = "30s"
    updates_interval: Duration = "1h"
    smart_interval: Duration = "10m"
    tls_interval: Duration = "1h"


class ServiceJob(FrozenModel):
    """A service every host runs whose metrics Prometheus scrapes on each host's private address."""

    name: JobName
    port: Port
    path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9/_.-]*$")] = "/metrics"
    scheme: Literal["http", "https"] = "http"
    bearer_secret: SecretName | None = None
    """A bearer token the service wants for its metrics: the secret's name in the secrets store."""


class AlertSettings(FrozenModel):
    """Thresholds and ``for:`` windows of the alert rules (files/monitoring/drape-alerts.yml.j2)."""

    host_down_for: Duration = "2m"
    raid_for: Duration = "1m"
    disk_used_percent: Percent = 85
    disk_for: Duration = "10m"
    memory_available_percent: Percent = 10
    memory_for: Duration = "10m"
    smart_for: Duration = "0s"
    docker_down_for: Duration = "2m"
    service_down_for: Duration = "5m"
    preview_start_p95_s: dict[StartKind, PositiveFloat] = Field(default_factory=lambda: dict(START_TARGETS_S))
    """Per start kind, the p95 start-to-ready the seed promises ("Prestazioni Preview": cold 1-2 min, warm
    10-20 s, hot immediate); over it for ``preview_start_for`` pages."""
    preview_start_for: Duration = "10m"
    queue_for: Duration = "5m"
    certificate_days: Annotated[int, Field(ge=1, le=365)] = 14
    reboot_required_days: Annotated[int, Field(ge=1, le=90)] = 7
    clock_offset_ms: Annotated[int, Field(ge=1)] = 500
    clock_for: Duration = "10m"
    collector_for: Duration = "15m"


class Receiver(FrozenModel):
    """Where alerts go: a webhook (its URL is the secret) or e-mail (the SMTP password is the secret)."""

    name: ReceiverName
    kind: Literal["webhook", "email"]
    secret: SecretName | None = None
    """The secret's name in the secrets store: a webhook's URL, an e-mail receiver's SMTP password."""
    url: AnyHttpUrl | None = None
    """Lab only: a webhook on the lab's private network, which is no secret."""
    to: EmailAddress | None = None
    sender: EmailAddress | None = None
    smarthost: HostPort | None = None
    username: str | None = None
    require_tls: bool = True
    send_resolved: bool = True

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind == "webhook":
            if (self.secret is None) == (self.url is None):
                raise invalid("webhook_url", "a webhook needs its URL from the secrets store", at="secret",
                              fix='name the secret that holds the URL, e.g. secret = "ops_webhook_url", and put '
                                  'the URL in the secrets store ([monitoring] in the secrets file)')
            extra = [f for f in ("to", "sender", "smarthost", "username") if getattr(self, f) is not None]
            if extra:
                raise invalid("webhook_email_field", f"{extra[0]} is an e-mail setting", at=extra[0],
                              fix='remove it, or use kind = "email"')
            return self
        missing = [f for f in ("to", "sender", "smarthost") if getattr(self, f) is None]
        if missing:
            raise invalid("email_incomplete", f"an e-mail receiver needs {', '.join(missing)}", at=missing[0],
                          fix='e.g. to = "ops@example.com", sender = "alerts@example.com", '
                              'smarthost = "smtp.example.com:587"')
        if self.url is not None:
            raise invalid("email_url", "an e-mail receiver has no url", at="url", fix="remove it")
        if self.username is not None and self.secret is None:
            raise invalid("smtp_password", "an SMTP login needs its password from the secrets store", at="secret",
                          fix='name the secret that holds the password, e.g. secret = "ops_smtp_password"')
        if self.secret is not None and self.username is None:
            raise invalid("smtp_username", "an SMTP password without the login it belongs to", at="username",
                          fix='add username = "..." (the SMTP login), or remove the secret for a server without login')
        return self


class Route(FrozenModel):
    """Alerts matching every given condition go to ``receiver``; the first matching route wins unless it says
    ``continue_matching``. Unmatched alerts go to the default receiver."""

    receiver: ReceiverName
    severity: tuple[Severity, ...] = ()
    alerts: tuple[AlertName, ...] = ()
    continue_matching: bool = False

    @model_validator(mode="after")
    def _matches_something(self) -> Self:
        if not self.severity and not self.alerts:
            raise invalid("route_matches_all", "a route without severity or alerts catches every alert",
                          at="severity", fix='add severity = ["critical"] or alerts = ["HostDown"], or make that '
                                             "receiver the default_receiver")
        return self


class AlertmanagerSettings(FrozenModel):
    port: Port = 9093
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"


class WatchdogSettings(FrozenModel):
    """The dead man's switch: an alert that always fires, sent to a receiver *outside* the fleet every
    ``interval``. That service (healthchecks.io, Dead Man's Snitch, an on-call tool's heartbeat) pages when the
    pings stop: losing the monitoring host, or Prometheus, or Alertmanager, still pages someone."""

    receiver: ReceiverName
    interval: Duration = "1m"


class RetentionSettings(FrozenModel):
    """How long Prometheus keeps samples, and the disk that may take. The size limit is computed from the fleet
    (hosts x series x samples per day x days x bytes per sample, with headroom) and refused above the budget."""

    days: Annotated[int, Field(ge=1, le=3650)] = 30
    disk_budget_gib: Annotated[int, Field(ge=1)] = 50
    series_per_host: Annotated[int, Field(ge=100)] = 3000
    """node_exporter on a 32-thread AX102 with its volumes (~1500), the textfile collectors and each service."""
    bytes_per_sample: Annotated[float, Field(gt=0)] = 2.0
    """Prometheus's documented 1-2 bytes per compressed sample, at the high end."""


class MonitoringSettings(FrozenModel):
    server: str
    """The fleet host that runs Prometheus and Alertmanager."""
    prometheus_port: Port = 9090
    scrape_interval: Duration = "30s"
    scrape_timeout: Duration = "10s"
    evaluation_interval: Duration = "30s"
    resend_delay: Duration = "1m"
    """How often Prometheus re-sends firing alerts; a firing alert ends 4 x this after its last send, which
    bounds how long the watchdog outlives a dead Prometheus."""
    exporters: ExporterSettings = ExporterSettings()
    collectors: CollectorSettings = CollectorSettings()
    services: tuple[ServiceJob, ...] = ()
    alerts: AlertSettings = AlertSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    receivers: Annotated[tuple[Receiver, ...], Field(min_length=1)]
    default_receiver: ReceiverName
    routes: tuple[Route, ...] = ()
    watchdog: WatchdogSettings
    retention: RetentionSettings = RetentionSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [r.name for r in self.receivers]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise invalid("duplicate_receiver", f"receiver {name!r} is defined twice",
                              at=f"receivers[{index}].name", fix="give every receiver its own name")
        known = ", ".join(names)
        for where, name in (("default_receiver", self.default_receiver), ("watchdog.receiver", self.watchdog.receiver),
                            *((f"routes[{i}].receiver", r.receiver) for i, r in enumerate(self.routes))):
            if name not in names:
                raise invalid("unknown_receiver", f"no receiver is called {name!r}", at=where,
                              fix=f"use one of {known}, or add a [[monitoring.receivers]] named {name!r}")
        if self.receiver(self.watchdog.receiver).kind != "webhook":
            raise invalid("watchdog_not_webhook", "the watchdog pings an outside heartbeat service over HTTP",
                          at="watchdog.receiver", fix="name a webhook receiver (the heartbeat service's URL)")
        if self.watchdog.receiver == self.default_receiver:
            raise invalid("watchdog_is_default", "the watchdog's receiver gets a ping every interval",
                          at="watchdog.receiver", fix="give the watchdog a receiver of its own (the heartbeat URL)")
        if seconds(self.scrape_timeout) > seconds(self.scrape_interval):
            raise invalid("timeout_above_interval", "the scrape timeout is longer than the scrape interval",
                          at="scrape_timeout", fix=f"use at most {self.scrape_interval}")
        ports = {self.exporters.node_exporter_port: "exporters.node_exporter_port"}
        jobs: set[str] = set(RESERVED_JOBS)
        for index, job in enumerate(self.services):
            if job.name in jobs:
                raise invalid("duplicate_job", f"the scrape job name {job.name!r} is taken",
                              at=f"services[{index}].name",
                              fix=f"use another name ({', '.join(RESERVED_JOBS)} are the server's own)")
            jobs.add(job.name)
            if job.port in ports:
                raise invalid("duplicate_port", f"port {job.port} is already {ports[job.port]}",
                              at=f"services[{index}].port", fix="give every exporter its own port")
            ports[job.port] = f"services[{index}].port"
        return self

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)

    @property
    def exporter_ports(self) -> tuple[int, ...]:
        """What the monitoring server scrapes on every host's private address (the firewall opens these)."""
        return (self.exporters.node_exporter_port, *(job.port for job in self.services))


def retention_bytes(monitoring: MonitoringSettings, hosts: int) -> int:
    """The disk the samples of ``hosts`` hosts take for the retention period (without headroom)."""
    retention = monitoring.retention
    samples_per_day = 86400 / seconds(monitoring.scrape_interval)
    return int(hosts * retention.series_per_host * samples_per_day * retention.days * retention.bytes_per_sample)


def monitoring_problem(monitoring: MonitoringSettings, host_names: Sequence[str],
                       environment: str) -> PydanticCustomError | None:
    """What the section gets wrong about the rest of the fleet file (the monitoring server, inline URLs, the
    retention budget), or None."""
    if monitoring.server not in host_names:
        return invalid("unknown_monitoring_server", f"{monitoring.server!r} is not a host of this fleet",
                       at="monitoring.server",
                       fix=f"name the host that runs Prometheus: one of {', '.join(host_names)}")
    if environment != "lab":
        for index, receiver in enumerate(monitoring.receivers):
            if receiver.url is not None:
                return invalid("inline_url", "a receiver's URL belongs in the secrets store, not the fleet file",
                               at=f"monitoring.receivers[{index}].url",
                               fix=f'replace it with secret = "{receiver.name.replace("-", "_")}_url" and put the URL '
                                   "in the secrets store ([monitoring] in ~/.config/drape-fleet/secrets.toml)")
    needed = retention_bytes(monitoring, len(host_names)) * 1.5
    budget = monitoring.retention.disk_budget_gib * 2**30
    if needed > budget:
        return invalid("retention_over_budget", f"{monitoring.retention.days} days of {len(host_names)} hosts need "
                       f"about {needed / 2**30:.0f} GiB with headroom, over the {monitoring.retention.disk_budget_gib} "
                       "GiB budget", at="monitoring.retention.days",
                       fix="keep fewer days, scrape less often, or raise retention.disk_budget_gib")
    return None
