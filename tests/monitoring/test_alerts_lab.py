"""Real faults on lab hosts, and the alert each must raise, end to end: the exporters on the host, Prometheus and
Alertmanager on ax1, the routes of the lab's fleet file, and a webhook receiver this test runs on the lab's
private network. Each fault must reach the receiver within its rule's window (the lab's short ``for:`` windows
and intervals; SLACK_S on top), and its recovery must resolve the alert.

Critical alerts go to the lab's pager receiver, warnings to the default one: each test also proves its route.
"""

from __future__ import annotations

import subprocess

import pytest

from drape_fleet.environments import FleetTarget
from drape_fleet.monitoring.receiver import AlertReceiver
from tests.monitoring.lab_support import (
    container,
    fed_mdstat,
    fire_window,
    on_host,
    resolve_window,
    settings,
    small_volume,
    wait_alert,
    wait_until,
)

pytestmark = pytest.mark.lab

STORAGE_FIXTURES = "tests/fixtures/storage"


def test_a_stopped_docker_engine_pages_and_resolves(monitored_lab: FleetTarget, alert_receiver: AlertReceiver) -> None:
    monitoring = settings(monitored_lab)
    collector = monitoring.collectors.docker_interval
    window = fire_window(monitoring, monitoring.alerts.docker_down_for, collector=collector)
    since = alert_receiver.now()
    on_host(monitored_lab, "ax2", "sudo systemctl stop docker.socket docker.service")
    try:
        _, took = wait_alert(alert_receiver, monitoring, "lab-pager", "DockerEngineDown", status="firing",
                             since=since, timeout=window, host="ax2")
        print(f"DockerEngineDown reached the pager {took:.1f} s after the engine stopped (window {window:.0f} s)")
    finally:
        recovered = alert_receiver.now()
        on_host(monitored_lab, "ax2", "sudo systemctl start docker.socket docker.service")
    _, took = wait_alert(alert_receiver, monitoring, "lab-pager", "DockerEngineDown", status="resolved",
                         since=recovered, timeout=resolve_window(monitoring, collector=collector), host="ax2")
    print(f"... and resolved {took:.1f} s after it started again")


def test_a_dead_host_pages_and_resolves_when_it_is_back(monitored_lab: FleetTarget,
                                                         alert_receiver: AlertReceiver) -> None:
    monitoring = settings(monitored_lab)
    since = alert_receiver.now()
    subprocess.run(["docker", "kill", container("ax3")], check=True, capture_output=True, timeout=60)
    try:
        _, took = wait_alert(alert_receiver, monitoring, "lab-pager", "HostDown", status="firing", since=since,
                             timeout=fire_window(monitoring, monitoring.alerts.host_down_for), host="ax3")
        print(f"HostDown reached the pager {took:.1f} s after ax3 died")
    finally:
        back = alert_receiver.now()
        subprocess.run(["docker", "start", container("ax3")], check=True, capture_output=True, timeout=120)
    # A booting host answers once systemd has started node_exporter: allow for the boot.
    _, took = wait_alert(alert_receiver, monitoring, "lab-pager", "HostDown", status="resolved", since=back,
                         timeout=resolve_window(monitoring) + 60, host="ax3")
    print(f"... and resolved {took:.1f} s after it was started again")
    wait_until(lambda: on_host(monitored_lab, "ax3", "systemctl is-active docker prometheus-node-exporter "
                               "| sort -u") == "active", 120, "ax3's services back after the restart")


def test_a_volume_past_the_threshold_warns_and_resolves(monitored_lab: FleetTarget,
                                                        alert_receiver: AlertReceiver) -> None:
    monitoring = settings(monitored_lab)
    mountpoint = "/srv/drape-fill-probe"
    with small_volume(monitored_lab, "ax2", mountpoint):
        since = alert_receiver.now()
        on_host(monitored_lab, "ax2", f"sudo fallocate -l 46M {mountpoint}/blob && df --output=pcent {mountpoint}")
        found, took = wait_alert(alert_receiver, monitoring, "lab-alerts", "DiskAlmostFull", status="firing",
                                 since=since, timeout=fire_window(monitoring, monitoring.alerts.disk_for), host="ax2",
                                 mountpoint=mountpoint)
        [alert] = [a for a in found.alerts if a["labels"].get("mountpoint") == mountpoint]
        assert alert["labels"]["severity"] == "warning" and alert["labels"]["fstype"] == "ext4"
        assert "% full" in alert["annotations"]["summary"] and alert["annotations"]["runbook"]
        print(f"DiskAlmostFull ({alert['annotations']['summary']}) reached the default receiver in {took:.1f} s")
        freed = alert_receiver.now()
        on_host(monitored_lab, "ax2", f"sudo rm {mountpoint}/blob")
        wait_alert(alert_receiver, monitoring, "lab-alerts", "DiskAlmostFull", status="resolved", since=freed,
                   timeout=resolve_window(monitoring), host="ax2", mountpoint=mountpoint)


def test_a_degraded_rebuilding_array_pages_warns_and_resolves(monitored_lab: FleetTarget,
                                                              alert_receiver: AlertReceiver) -> None:
    """A captured /proc/mdstat of a RAID1 whose md2 lost a disk and rebuilds onto its replacement, read by
    node_exporter's own md collector: RaidDegraded pages, RaidResyncing warns."""
    from drape_fleet.paths import project_root

    monitoring = settings(monitored_lab)
    mdstat = (project_root() / STORAGE_FIXTURES / "mdstat-recovering").read_text()
    window = fire_window(monitoring, monitoring.alerts.raid_for)
    since = alert_receiver.now()
    with fed_mdstat(monitored_lab, "ax3", mdstat):
        found, took = wait_alert(alert_receiver, monitoring, "lab-pager", "RaidDegraded", status="firing",
                                 since=since, timeout=window, host="ax3", device="md2")
        assert [a["labels"]["device"] for a in found.alerts if a["status"] == "firing"] == ["md2"], \
            "md0 and md1 are whole in this capture"
        print(f"RaidDegraded (md2) reached the pager in {took:.1f} s")
        wait_alert(alert_receiver, monitoring, "lab-alerts", "RaidResyncing", status="firing", since=since,
                   timeout=window, host="ax3", device="md2", state="recovering")
        repaired = alert_receiver.now()
    for receiver, alertname in (("lab-pager", "RaidDegraded"), ("lab-alerts", "RaidResyncing")):
        wait_alert(alert_receiver, monitoring, receiver, alertname, status="resolved", since=repaired,
                   timeout=resolve_window(monitoring), host="ax3", device="md2")
