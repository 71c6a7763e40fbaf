"""The alert rules, as code: every alert, its expression, its window and threshold from the fleet file's
``[monitoring.alerts]``, its severity, and a runbook line saying what to do. Rendered by
files/monitoring/drape-alerts.yml.j2; checked by ``promtool check rules`` and unit-tested with
``promtool test rules`` (tests/monitoring/promtool/) in ./dev test.

Severity: ``critical`` pages (the routes send it to the on-call receiver), ``warning`` goes to the default
receiver. The watchdog has severity ``none``: it always fires, and only the dead man's switch hears it.

The textfile collectors' metrics (``drape_*``) are written by files/monitoring/drape-node-metrics; the
previews' metrics (``drape_preview_*``) by the runtime service (drape_fleet.service.metrics, issue 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from drape_fleet.config.monitoring import AlertSettings, MonitoringSettings, seconds
from drape_fleet.provision.render import render

RULES_FILE = "drape-alerts.yml"
WATCHDOG = "Watchdog"

# The runtime service's metrics (drape_fleet.service.metrics): one place to follow a rename.
PREVIEW_START_SECONDS = "drape_preview_start_seconds"
"""Histogram, label ``kind`` (cold, warm, prewarmed, hot): from the start call until the preview is ready."""
PREVIEW_QUEUE_LENGTH = "drape_preview_queue_length"
"""Gauge: placements waiting for capacity, per service instance."""

FILESYSTEMS = 'job="node",fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|fuse.*"'
"""Volumes that hold data; the exporter already leaves out /proc, /sys, /run, /dev and Docker's layers."""


def label(name: str) -> str:
    """A Prometheus template reference to a label of the alert, for summaries."""
    return "{{ $labels." + name + " }}"


VALUE = "{{ $value | humanize }}"


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    severity: str
    summary: str
    runbook: str
    for_: str = ""
    """Empty: fires at the first evaluation that matches."""
    labels: tuple[tuple[str, str], ...] = ()
    """Besides severity: what tells rules of the same alert apart."""
    kind: ClassVar[str] = "alert"


@dataclass(frozen=True)
class RecordingRule:
    """A constant series for dashboards and comparisons (targets, the seed's figures)."""

    record: str
    value: float
    labels: tuple[tuple[str, str], ...]
    kind: ClassVar[str] = "record"

    @property
    def expr(self) -> str:
        return f"vector({self.value:g})"


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[AlertRule | RecordingRule, ...]


def _for(duration: str) -> str:
    return "" if seconds(duration) == 0 else duration


def host_rules(alerts: AlertSettings, *, clock_synced_here: bool = True) -> RuleGroup:
    """``clock_synced_here``: hosts discipline their own clock. A lab stand-in shares this machine's kernel and
    clock, which the lab does not synchronise: there only the offset is checked, not the sync status."""
    host = label("host")
    unsynced = '\nor node_timex_sync_status{job="node"} == 0' if clock_synced_here else ""
    disk = alerts.disk_used_percent
    memory = alerts.memory_available_percent
    return RuleGroup("drape-hosts", (
        AlertRule(
            "HostDown", 'up{job="node"} == 0', "critical",
            f"{host} does not answer on its private address",
            "Check the server in Hetzner Robot (power, network) and ping its private address from another host; "
            "the runtime places its previews again elsewhere. Reset it from Robot if it hangs, then `invoke verify "
            "--host HOST`.", _for(alerts.host_down_for)),
        AlertRule(
            "RaidDegraded",
            '(node_md_disks_required{job="node"} - ignoring(state) node_md_disks{job="node",state="active"}) > 0\n'
            'or node_md_state{job="node",state="inactive"} == 1',
            "critical", f"{host}: RAID array {label('device')} is missing a disk",
            "Read /proc/mdstat and `mdadm --detail /dev/DEVICE` on the host; `invoke fleet.drain --host HOST`, ask "
            "Hetzner to replace the NVMe (serial from `smartctl -i`), then `mdadm --manage /dev/DEVICE --add` the new "
            "partition. Provisioning refuses the host until the array is clean.", _for(alerts.raid_for)),
        AlertRule(
            "RaidResyncing", 'node_md_state{job="node",state=~"resync|recovering"} == 1', "warning",
            f"{host}: RAID array {label('device')} is rebuilding",
            "Let it finish (watch /proc/mdstat); do not reboot or reprovision meanwhile. A rebuild slower than a "
            "few hours means a sick disk: check SMART.", _for(alerts.raid_for)),
        AlertRule(
            "DiskAlmostFull",
            f"100 * (1 - node_filesystem_avail_bytes{{{FILESYSTEMS}}}\n"
            f"  / node_filesystem_size_bytes{{{FILESYSTEMS}}}) > {disk:g}",
            "warning", f"{host}: {label('mountpoint')} is {VALUE}% full",
            "Find the space (`du -xh --max-depth=2 MOUNT | sort -h`): old images (`docker image prune` of "
            "unused templates), stopped previews the reaper missed, the pnpm store over its limit; drain the host "
            "if previews fill it.", _for(alerts.disk_for)),
        AlertRule(
            "InodesAlmostFull",
            f"100 * (1 - node_filesystem_files_free{{{FILESYSTEMS}}}\n"
            f"  / node_filesystem_files{{{FILESYSTEMS}}}) > {disk:g}",
            "warning", f"{host}: {label('mountpoint')} has used {VALUE}% of its inodes",
            "Many small files: a node_modules tree outside the pnpm store, or logs; find them with "
            "`find MOUNT -xdev -printf '%h\\n' | sort | uniq -c | sort -n | tail`.", _for(alerts.disk_for)),
        AlertRule(
            "MemoryPressure",
            f'100 * node_memory_MemAvailable_bytes{{job="node"}}\n'
            f'  / node_memory_MemTotal_bytes{{job="node"}} < {memory:g}\n'
            'or rate(node_pressure_memory_stalled_seconds_total{job="node"}[5m]) > 0.1',
            "warning", f"{host} is short of memory",
            "`invoke fleet.status` for previews per host: cordon the host (`invoke fleet.cordon --host HOST`) so new "
            "previews go elsewhere, and look for a runaway process with `ps aux --sort=-rss | head`.",
            _for(alerts.memory_for)),
        AlertRule(
            "SmartFailure", "drape_smart_healthy == 0 or drape_smart_critical_warning > 0", "critical",
            f"{host}: NVMe {label('device')} reports a SMART failure",
            "`smartctl -a DEVICE` on the host; drain it (`invoke fleet.drain --host HOST`) and ask Hetzner to "
            "replace the drive before the RAID loses its second copy.", _for(alerts.smart_for)),
        AlertRule(
            "DockerEngineDown", "drape_docker_engine_up == 0", "critical",
            f"{host}: the Docker engine does not answer",
            "`systemctl status docker` and `journalctl -u docker -n 100` on the host; `systemctl restart docker` "
            "(live-restore keeps previews running). Until it answers the runtime treats the host as unavailable.",
            _for(alerts.docker_down_for)),
        AlertRule(
            "CertificateExpiring",
            f"drape_tls_certificate_not_after_timestamp_seconds - time() < {alerts.certificate_days} * 86400",
            "warning", f"{host}: the {label('role')} certificate {label('path')} expires in "
            "{{ $value | humanizeDuration }}",
            "Renew it: `invoke pki.issue --host HOST --renew`, then `invoke provision --host HOST --only docker` "
            "(for the CA, make a new CA and reissue every host and the backend's client certificate)."),
        AlertRule(
            "RebootRequired",
            "drape_reboot_required == 1\n"
            f"and time() - drape_reboot_required_since_timestamp_seconds > {alerts.reboot_required_days} * 86400",
            "warning", f"{host} has needed a reboot for more than {alerts.reboot_required_days} days",
            "Reboot at a quiet hour: `invoke fleet.drain --host HOST`, reboot, `invoke verify --host HOST`, then "
            "`invoke fleet.uncordon --host HOST`."),
        AlertRule(
            "ClockDrift",
            f'abs(node_timex_offset_seconds{{job="node"}}) > {alerts.clock_offset_ms / 1000:g}{unsynced}',
            "warning", f"{host}: the clock is off or not synchronised",
            "`timedatectl timesync-status` on the host; restart systemd-timesyncd and check that UDP 123 goes out. "
            "TLS, the reaper's idle times and the metrics themselves depend on the clock.", _for(alerts.clock_for)),
        AlertRule(
            "CollectorStale",
            "time() - drape_collector_last_run_timestamp_seconds > 3 * drape_collector_interval_seconds\n"
            "or drape_collector_success == 0",
            "warning", f"{host}: the {label('collector')} metrics collector is failing or stale",
            "`systemctl status drape-node-metrics-COLLECTOR.timer drape-node-metrics-COLLECTOR.service` and its "
            "journal on the host; its alerts (Docker, SMART, certificates, updates) are blind until it runs.",
            _for(alerts.collector_for)),
    ))


def preview_rules(monitoring: MonitoringSettings) -> RuleGroup:
    alerts = monitoring.alerts
    rules: list[AlertRule | RecordingRule] = []
    if monitoring.services:
        jobs = "|".join(job.name for job in monitoring.services)
        rules.append(AlertRule(
            "ServiceDown", f'up{{job=~"{jobs}"}} == 0', "critical",
            f"{label('host')}: the {label('job')} service does not answer its metrics",
            "`systemctl status JOB` and its journal on the host; the backend's calls go to the other hosts' "
            "instances meanwhile.", _for(alerts.service_down_for)))
    for kind, target in sorted(alerts.preview_start_p95_s.items()):
        rules.append(AlertRule(
            "PreviewStartSlow",
            "histogram_quantile(0.95,\n"
            f'  sum by (kind, le) (rate({PREVIEW_START_SECONDS}_bucket{{kind="{kind}"}}[10m]))\n'
            f") > {target:g}",
            "critical", f"{kind} preview starts take {VALUE}s at p95 (target {target:g}s)",
            "Which phase is slow: the cutover console (clone, install, compile); then the hosts: CPU steal, disk "
            "latency, the pnpm store's hit rate, template images present (`invoke fleet.images`).",
            _for(alerts.preview_start_for), labels=(("kind", kind),)))
    rules.append(AlertRule(
        "PreviewQueueNotEmpty", f"sum({PREVIEW_QUEUE_LENGTH}) > 0", "critical",
        f"{VALUE} preview(s) have been waiting for capacity",
        "The fleet is full: `invoke fleet.status`. Uncordon hosts that are back, lower idle persistence, or add "
        "a server (`invoke plan --containers N` sizes it).", _for(alerts.queue_for)))
    return RuleGroup("drape-previews", tuple(rules))


def monitoring_rules() -> RuleGroup:
    return RuleGroup("drape-monitoring", (
        AlertRule(
            WATCHDOG, "vector(1)", "none", "The alert pipeline works (this alert always fires)",
            "Nothing to do while it fires: the outside heartbeat service pages when it stops arriving, because "
            "Prometheus, Alertmanager or the monitoring host is down."),
        AlertRule(
            "AlertNotificationsFailing", "rate(alertmanager_notifications_failed_total[5m]) > 0", "warning",
            f"Alertmanager fails to deliver {label('integration')} notifications",
            "`journalctl -u prometheus-alertmanager` on the monitoring server: a receiver's URL or SMTP login is "
            "wrong or unreachable; fix its secret and `invoke provision --host SERVER --only monitoring`.", "10m"),
    ))


START_TARGET = "drape:preview_start_target_seconds"
SEED_START = "drape:seed_start_seconds"
SEED_STARTS: dict[tuple[str, str], tuple[float, float]] = {
    # The plan's "Prestazioni Preview" tables (seconds, low-high): Fly.io today and what Hetzner promises.
    ("fly", "cold"): (180, 300), ("hetzner", "cold"): (60, 120),
    ("fly", "warm"): (120, 300), ("hetzner", "warm"): (10, 20),
    ("fly", "hot"): (120, 300), ("hetzner", "hot"): (0, 0),
}


def reference_rules(alerts: AlertSettings) -> RuleGroup:
    """Targets and the plan's figures as series, for the cutover console to put beside the measured ones."""
    targets = sorted(alerts.preview_start_p95_s.items())
    rules: list[AlertRule | RecordingRule] = [RecordingRule(START_TARGET, t, (("kind", kind),)) for kind, t in targets]
    for (provider, kind), (low, high) in sorted(SEED_STARTS.items()):
        rules += [RecordingRule(SEED_START, low, (("bound", "low"), ("kind", kind), ("provider", provider))),
                  RecordingRule(SEED_START, high, (("bound", "high"), ("kind", kind), ("provider", provider)))]
    return RuleGroup("drape-reference", tuple(rules))


def rule_groups(monitoring: MonitoringSettings, *, clock_synced_here: bool = True) -> tuple[RuleGroup, ...]:
    return (host_rules(monitoring.alerts, clock_synced_here=clock_synced_here), preview_rules(monitoring),
            monitoring_rules(), reference_rules(monitoring.alerts))


def rules_file(monitoring: MonitoringSettings, *, clock_synced_here: bool = True) -> str:
    """/etc/prometheus/drape/rules/drape-alerts.yml."""
    groups = rule_groups(monitoring, clock_synced_here=clock_synced_here)
    return render("monitoring/drape-alerts.yml.j2", groups=groups)
