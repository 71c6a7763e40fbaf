"""Monitoring on the lab as ops and `invoke cutover phase5` see it: the health check, the dead man's switch,
who may reach the exporters, the consoles through the tunnel, and metric values checked against the hosts."""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import sys
import time
from itertools import pairwise
from statistics import median

import pytest
import requests
from cryptography import x509

from drape_fleet.config.monitoring import seconds
from drape_fleet.environments import FleetTarget
from drape_fleet.monitoring.api import MonitoringApi
from drape_fleet.monitoring.health import check
from drape_fleet.monitoring.plan import monitoring_plan
from drape_fleet.monitoring.receiver import AlertReceiver, receiver_path
from drape_fleet.monitoring.tunnel import Forward, Tunnel
from drape_fleet.paths import project_root
from drape_fleet.pki.paths import host_tls_files
from tests.monitoring.lab_support import SLACK_S, on_host, settings, wait_until

pytestmark = pytest.mark.lab


def _api(target: FleetTarget) -> MonitoringApi:
    plan = monitoring_plan(target.fleet)
    return MonitoringApi(target.ssh_target(plan.server), plan)


def test_monitoring_is_working_as_the_cutover_asks(monitored_lab: FleetTarget, alert_receiver: AlertReceiver) -> None:
    """The library call (targets up, rules loaded, alerts delivered, watchdog firing) and the task ops run."""
    deadline = time.monotonic() + 60
    health = check(monitored_lab)
    while not health.ok and time.monotonic() < deadline:
        time.sleep(3)
        health = check(monitored_lab)
    assert health.ok, [f"{c.name}: {c.detail}" for c in health.failed()]
    run = subprocess.run([sys.executable, "-m", "invoke", "monitoring.health", "--env", "lab", "--json"],
                         cwd=project_root(), capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert report["ok"] is True and report["server"] == "ax1"
    assert {c["name"] for c in report["checks"]} == {"prometheus", "targets", "rules", "alertmanager", "delivering",
                                                     "watchdog"}


def test_the_watchdog_pings_every_interval_and_stops_with_prometheus(monitored_lab: FleetTarget,
                                                                     alert_receiver: AlertReceiver) -> None:
    """The dead man's switch: pings come every interval while the pipeline works, and stop (without a
    "resolved" ping) once the rule evaluator is gone, so the outside service pages."""
    monitoring = settings(monitored_lab)
    interval = seconds(monitoring.watchdog.interval)
    path = receiver_path(monitoring, monitoring.watchdog.receiver)
    wait_until(lambda: len(alert_receiver.notifications(path)) >= 4, 6 * interval + SLACK_S, "four heartbeats")
    pings = [n.received for n in alert_receiver.notifications(path)][-6:]
    gaps = [b - a for a, b in pairwise(pings)]
    assert len(pings) >= 3 and median(gaps) < 1.6 * interval, f"heartbeat gaps {gaps} for a {interval} s interval"
    on_host(monitored_lab, monitoring.server, "sudo systemctl stop prometheus")
    try:
        stopped = alert_receiver.now()
        # Alertmanager keeps a firing alert until 4 resend delays after Prometheus last sent it.
        quiet_after = 4 * max(seconds(monitoring.resend_delay), seconds(monitoring.evaluation_interval)) + interval
        # One interval of slack for a notification already under way at the cut-off on a loaded machine; the two
        # intervals watched after it would hold two pings if they went on.
        time.sleep(quiet_after + 3 * interval)
        late = [n for n in alert_receiver.notifications(path) if n.received > stopped + quiet_after + interval]
        assert late == [], f"heartbeats went on after Prometheus stopped: {[n.describe() for n in late]}"
        assert all(n.status == "firing" for n in alert_receiver.notifications(path)), "a heartbeat said resolved"
    finally:
        restarted = alert_receiver.now()
        on_host(monitored_lab, monitoring.server, "sudo systemctl start prometheus")
    alert_receiver.wait_for(lambda n: n.path == path and n.has("Watchdog"), timeout=60 + SLACK_S, since=restarted)


def _answers(target: FleetTarget, source: str, address: str, port: int) -> bool:
    out = on_host(target, source, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 http://{address}:{port}/metrics"
                  " || true", check=False)
    return out == "200"


def test_exporters_answer_the_monitoring_server_alone_on_the_private_address(monitored_lab: FleetTarget) -> None:
    monitoring = settings(monitored_lab)
    port = monitoring.exporters.node_exporter_port
    ax3 = monitored_lab.fleet.host("ax3")
    assert monitoring.server == "ax1"
    assert _answers(monitored_lab, "ax1", str(ax3.private_address), port)
    assert not _answers(monitored_lab, "ax2", str(ax3.private_address), port), "another host reads ax3's exporter"
    with pytest.raises(OSError):  # this machine is the backend: it gets no answer either
        socket.create_connection((str(ax3.private_address), port), timeout=3).close()
    assert not _answers(monitored_lab, "ax1", str(ax3.public_address), port), "the exporter listens publicly"
    listening = on_host(monitored_lab, "ax1", "ss -Hltn | awk '{print $4}' | grep -E ':(9090|9093|9094)$' | sort")
    assert listening.split() == ["127.0.0.1:9090", "127.0.0.1:9093"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_consoles_render_through_the_tunnel(monitored_lab: FleetTarget) -> None:
    plan = monitoring_plan(monitored_lab.fleet)
    prometheus = Forward("prometheus", _free_port(), plan.settings.prometheus_port)
    alertmanager = Forward("alertmanager", _free_port(), plan.settings.alertmanager.port)
    with Tunnel(monitored_lab.ssh_target(plan.server), (prometheus, alertmanager)):
        base = f"http://127.0.0.1:{prometheus.local_port}"
        fleet = requests.get(f"{base}/consoles/drape-fleet.html", timeout=60)
        cutover = requests.get(f"{base}/consoles/drape-cutover.html", timeout=60)
        ready = requests.get(f"http://127.0.0.1:{alertmanager.local_port}/-/ready", timeout=60)
    assert (fleet.status_code, cutover.status_code, ready.status_code) == (200, 200, 200)
    for host in monitored_lab.fleet.host_names:
        assert f"<td>{host}</td>" in fleet.text
    assert "/srv/drape" in fleet.text and "error executing template" not in fleet.text
    assert "<td>cold</td>" in cutover.text and "<td>180-300 s</td>" in cutover.text, "the plan's figures beside ours"


def test_metric_values_are_the_hosts_own(monitored_lab: FleetTarget) -> None:
    """What Prometheus holds for ax2 is what ax2 is: its certificate's end, its running containers."""
    api = _api(monitored_lab)
    cert, _ = host_tls_files(monitored_lab.env.pki_dir, "ax2")
    not_after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    [sample] = api.query('drape_tls_certificate_not_after_timestamp_seconds{host="ax2",role="server"}')
    assert datetime.datetime.fromtimestamp(float(sample["value"][1]), datetime.UTC) == not_after
    image = "drape-monitoring/probe:busybox"
    on_host(monitored_lab, "ax2", f"sudo docker image inspect {image} >/dev/null 2>&1 || (d=$(mktemp -d) && "
            "mkdir $d/bin && cp $(command -v busybox) $d/bin/busybox && ln -s busybox $d/bin/sleep && "
            f"sudo tar -C $d -c . | sudo docker import - {image} >/dev/null; rm -rf $d)")
    started = [on_host(monitored_lab, "ax2", f"sudo docker run -d --label drape.verify=probe {image} /bin/sleep 600")
               for _ in range(2)]
    try:
        running = int(on_host(monitored_lab, "ax2", "sudo docker ps -q | wc -l"))
        assert running >= 2

        def seen() -> bool:
            [count] = api.query('drape_docker_containers{host="ax2",state="running"}')
            return int(float(count["value"][1])) == running

        wait_until(seen, 30, f"Prometheus counting {running} running containers on ax2")
    finally:
        on_host(monitored_lab, "ax2", f"sudo docker rm -f {' '.join(started)}", check=False)
