"""Unit tests for every alert rule, run by ``promtool test rules`` against the rules rendered for production.

Each case gives input series (promtool's expanding notation: ``1 1 0x5`` is 1, 1, then 0 six times, one value per
``interval``), and what must fire when: nothing before the rule's window has passed, the alert with exactly these
labels once it has, and nothing after the fault clears. Thresholds and ``for:`` windows are production's defaults.
The annotations promtool compares come from the rule itself, with the labels and value the case expects filled
in: what a case pins down is the expression, the window and the labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from drape_fleet.monitoring.rules import AlertRule, RuleGroup

NODE = {"job": "node", "host": "ax2", "instance": "10.0.0.12:9100"}


def sel(metric: str, **labels: str) -> str:
    merged = {**NODE, **labels}
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in merged.items()) + "}"


@dataclass(frozen=True)
class Fires:
    labels: dict[str, str]
    value: str = ""
    """What ``{{ $value | humanize }}`` (or humanizeDuration) prints in the summary."""


@dataclass(frozen=True)
class At:
    time: str
    alert: str
    fires: tuple[Fires, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    series: dict[str, str]
    checks: tuple[At, ...]
    interval: str = "1m"
    notes: list[str] = field(default_factory=list)


def _labels(**extra: str) -> dict[str, str]:
    return {**NODE, **extra}


CASES = (
    Case("a host that stops answering pages after 2 minutes, and clears when it answers", {
        sel("up"): "1 1 0 0 0 0 0 1 1"}, (
        At("3m", "HostDown"),
        At("5m", "HostDown", (Fires(_labels(severity="critical")),)),
        At("8m", "HostDown"))),
    Case("a RAID1 array with one of two disks active is degraded after a minute", {
        sel("node_md_disks_required", device="md1"): "2x10",
        sel("node_md_disks", device="md1", state="active"): "2 2 1 1 1 1 2 2"}, (
        At("2m", "RaidDegraded"),
        At("4m", "RaidDegraded", (Fires(_labels(severity="critical", device="md1")),)),
        At("7m", "RaidDegraded"))),
    Case("an inactive array is degraded too", {
        sel("node_md_state", device="md0", state="inactive"): "0 1 1 1 1"}, (
        At("3m", "RaidDegraded", (Fires(_labels(severity="critical", device="md0", state="inactive")),)),)),
    Case("a rebuild (recovering or resync) warns while it lasts", {
        sel("node_md_state", device="md2", state="recovering"): "0 1 1 1 0 0",
        sel("node_md_state", device="md0", state="check"): "1x5"}, (
        At("1m", "RaidResyncing"),
        At("3m", "RaidResyncing", (Fires(_labels(severity="warning", device="md2", state="recovering")),)),
        At("5m", "RaidResyncing"))),
    Case("a volume over 85% for 10 minutes warns; tmpfs is not a volume", {
        sel("node_filesystem_size_bytes", device="/dev/md2", fstype="xfs", mountpoint="/srv/drape"): "100x30",
        sel("node_filesystem_avail_bytes", device="/dev/md2", fstype="xfs", mountpoint="/srv/drape"):
            "50 50 10x20 50x5",
        sel("node_filesystem_size_bytes", device="tmpfs", fstype="tmpfs", mountpoint="/dev/shm"): "100x30",
        sel("node_filesystem_avail_bytes", device="tmpfs", fstype="tmpfs", mountpoint="/dev/shm"): "1x30"}, (
        At("10m", "DiskAlmostFull"),
        At("13m", "DiskAlmostFull", (Fires(_labels(severity="warning", device="/dev/md2", fstype="xfs",
                                                   mountpoint="/srv/drape"), "90"),)),
        At("25m", "DiskAlmostFull"))),
    Case("inodes over 85% for 10 minutes warn", {
        sel("node_filesystem_files", device="/dev/md2", fstype="xfs", mountpoint="/srv/drape"): "1000x20",
        sel("node_filesystem_files_free", device="/dev/md2", fstype="xfs", mountpoint="/srv/drape"): "50x20"}, (
        At("5m", "InodesAlmostFull"),
        At("11m", "InodesAlmostFull", (Fires(_labels(severity="warning", device="/dev/md2", fstype="xfs",
                                                     mountpoint="/srv/drape"), "95"),)),)),
    Case("memory available under 10% for 10 minutes warns", {
        sel("node_memory_MemAvailable_bytes"): "50 5x15",
        sel("node_memory_MemTotal_bytes"): "100x16"}, (
        At("9m", "MemoryPressure"),
        At("12m", "MemoryPressure", (Fires(_labels(severity="warning")),)))),
    Case("processes stalled on memory over 10% of the time warn too", {
        sel("node_memory_MemAvailable_bytes"): "50x20",
        sel("node_memory_MemTotal_bytes"): "100x20",
        sel("node_pressure_memory_stalled_seconds_total"): "0+12x20"}, (
        At("16m", "MemoryPressure", (Fires(_labels(severity="warning")),)),)),
    Case("a drive whose SMART check fails, or that raises a critical warning, pages at once", {
        'drape_smart_healthy{host="ax2",device="/dev/nvme1",model="SAMSUNG MZQL21T9HCJR",serial="S64"}': "1 0",
        'drape_smart_critical_warning{host="ax2",device="/dev/nvme0"}': "0 4"}, (
        At("0m", "SmartFailure"),
        At("1m", "SmartFailure", (
            Fires({"severity": "critical", "host": "ax2", "device": "/dev/nvme1", "model": "SAMSUNG MZQL21T9HCJR",
                   "serial": "S64"}),
            Fires({"severity": "critical", "host": "ax2", "device": "/dev/nvme0"}))))),
    Case("a Docker engine that does not answer for 2 minutes pages", {
        'drape_docker_engine_up{host="ax2"}': "1 0 0 0 0 1"}, (
        At("2m", "DockerEngineDown"),
        At("3m", "DockerEngineDown", (Fires({"severity": "critical", "host": "ax2"}),)),
        At("5m", "DockerEngineDown"))),
    Case("a certificate that expires within 14 days warns; one with 30 days left does not", {
        'drape_tls_certificate_not_after_timestamp_seconds{host="ax2",role="server",path="/etc/docker/tls/cert.pem"}':
            "864000x3",
        'drape_tls_certificate_not_after_timestamp_seconds{host="ax2",role="ca",path="/etc/docker/tls/ca.pem"}':
            "2592000x3"}, (
        At("1m", "CertificateExpiring", (Fires({"severity": "warning", "host": "ax2", "role": "server",
                                                "path": "/etc/docker/tls/cert.pem"}, "9d 23h 59m 0s"),)),)),
    Case("a reboot required for more than 7 days warns", {
        'drape_reboot_required{host="ax2"}': "1x200",
        'drape_reboot_required_since_timestamp_seconds{host="ax2"}': "3600x200"}, (
        At("7d", "RebootRequired"),
        At("7d2h", "RebootRequired", (Fires({"severity": "warning", "host": "ax2"}),))), interval="1h"),
    # (Days of series: evaluated hourly in a file of its own, or promtool evaluates every rule each minute.)
    Case("a clock off by more than 500 ms, or not synchronised, for 10 minutes warns", {
        sel("node_timex_offset_seconds"): "0.6x20",
        sel("node_timex_sync_status"): "1x20",
        sel("node_timex_offset_seconds", instance="10.0.0.13:9100", host="ax3"): "0x20",
        sel("node_timex_sync_status", instance="10.0.0.13:9100", host="ax3"): "0x20"}, (
        At("9m", "ClockDrift"),
        At("11m", "ClockDrift", (Fires(_labels(severity="warning")),
                                 Fires(_labels(severity="warning", instance="10.0.0.13:9100", host="ax3"))),))),
    Case("a collector that stopped running warns; a running one does not", {
        'drape_collector_last_run_timestamp_seconds{host="ax2",collector="docker"}': "0x40",
        'drape_collector_interval_seconds{host="ax2",collector="docker"}': "30x40",
        'drape_collector_success{host="ax2",collector="docker"}': "1x40",
        'drape_collector_last_run_timestamp_seconds{host="ax2",collector="tls"}': "0+60x40",
        'drape_collector_interval_seconds{host="ax2",collector="tls"}': "3600x40",
        'drape_collector_success{host="ax2",collector="tls"}': "1x40"}, (
        At("10m", "CollectorStale"),
        At("20m", "CollectorStale", (Fires({"severity": "warning", "host": "ax2", "collector": "docker"}),)))),
    Case("a service whose metrics do not answer for 5 minutes pages", {
        'up{job="drape-runtime",host="ax2",instance="10.0.0.12:8420"}': "1 0x8"}, (
        At("4m", "ServiceDown"),
        At("7m", "ServiceDown", (Fires({"severity": "critical", "job": "drape-runtime", "host": "ax2",
                                        "instance": "10.0.0.12:8420"}),)))),
    Case("cold starts over their p95 target for 10 minutes page; hot starts within theirs do not", {
        # Every cold start takes between 120 and 180 s: p95 interpolates to 177 s. Hot ones take under 1 s.
        'drape_preview_start_seconds_bucket{kind="cold",le="120",instance="10.0.0.12:8420"}': "0x40",
        'drape_preview_start_seconds_bucket{kind="cold",le="180",instance="10.0.0.12:8420"}': "0+6x40",
        'drape_preview_start_seconds_bucket{kind="cold",le="+Inf",instance="10.0.0.12:8420"}': "0+6x40",
        'drape_preview_start_seconds_bucket{kind="hot",le="1",instance="10.0.0.12:8420"}': "0+60x40",
        'drape_preview_start_seconds_bucket{kind="hot",le="+Inf",instance="10.0.0.12:8420"}': "0+60x40"}, (
        At("9m", "PreviewStartSlow"),
        At("15m", "PreviewStartSlow", (Fires({"severity": "critical", "kind": "cold"}, "177"),)))),
    Case("a queue that stays non-empty for 5 minutes pages", {
        'drape_preview_queue_length{host="ax1",instance="10.0.0.11:8420"}': "0 2 2 1 2 2 2 2 0",
        'drape_preview_queue_length{host="ax2",instance="10.0.0.12:8420"}': "0x9"}, (
        At("5m", "PreviewQueueNotEmpty"),
        At("6m", "PreviewQueueNotEmpty", (Fires({"severity": "critical"}, "2"),)),
        At("8m", "PreviewQueueNotEmpty"))),
    Case("the watchdog always fires", {}, (
        At("0m", "Watchdog", (Fires({"severity": "none"}),)),
        At("90m", "Watchdog", (Fires({"severity": "none"}),)))),
    Case("Alertmanager failing to deliver for 10 minutes warns", {
        'alertmanager_notifications_failed_total{host="ax3",job="alertmanager",integration="email"}': "0+1x30"}, (
        At("8m", "AlertNotificationsFailing"),
        At("20m", "AlertNotificationsFailing", (Fires({"severity": "warning", "host": "ax3", "job": "alertmanager",
                                                        "integration": "email"}),)))),
)

_LABEL = re.compile(r"\{\{ \$labels\.([a-z_]+) \}\}")
_VALUE = re.compile(r"\{\{ \$value \| humanize(?:Duration)? \}\}")


def expand(text: str, labels: dict[str, str], value: str) -> str:
    """Fill a summary the way Prometheus would, for the labels and value a case expects."""
    return _VALUE.sub(value, _LABEL.sub(lambda m: labels.get(m.group(1), "<no value>"), text))


def _rule(groups: tuple[RuleGroup, ...], name: str, labels: dict[str, str]) -> AlertRule:
    for group in groups:
        for rule in group.rules:
            if isinstance(rule, AlertRule) and rule.name == name and all(labels.get(k) == v for k, v in rule.labels):
                return rule
    raise KeyError(f"no alert rule {name} for {labels}")


def alerts_covered() -> set[str]:
    return {check.alert for case in CASES for check in case.checks}


def promtool_tests(groups: tuple[RuleGroup, ...], rules_file: str) -> dict[str, dict[str, Any]]:
    """promtool's test files by evaluation interval (as data: written as JSON, which YAML reads)."""
    files: dict[str, dict[str, Any]] = {}
    for case in CASES:
        checks = []
        for check in case.checks:
            expected = []
            for fires in check.fires:
                rule = _rule(groups, check.alert, fires.labels)
                expected.append({"exp_labels": fires.labels, "exp_annotations": {
                    "summary": expand(rule.summary, fires.labels, fires.value), "runbook": rule.runbook}})
            checks.append({"eval_time": check.time, "alertname": check.alert, "exp_alerts": expected})
        test_file = files.setdefault(case.interval, {"rule_files": [rules_file], "evaluation_interval": case.interval,
                                                     "tests": []})
        test_file["tests"].append({"name": case.name, "interval": case.interval,
                                   "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                                   "alert_rule_test": checks})
    return files
