"""What the monitoring lab tests share: commands on lab hosts, the alert windows the lab's fleet file implies,
waiting for a notification, and the faults (a full volume, a degraded array) put on a host and taken off."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from drape_fleet.config.monitoring import MonitoringSettings, seconds
from drape_fleet.environments import FleetTarget
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.monitoring.exporters import PROCFS_VIEW
from drape_fleet.monitoring.receiver import AlertReceiver, Notification, receiver_path
from drape_fleet.ssh import ssh_run

SLACK_S = 20.0
"""On top of each window: this machine is shared by several agents, and a scrape or a timer can run late."""


def on_host(target: FleetTarget, name: str, command: str, *, check: bool = True, timeout: float = 60) -> str:
    result = ssh_run(target.ssh_target(target.fleet.host(name)), command, timeout=timeout, check=check)
    return result.stdout.strip()


def settings(target: FleetTarget) -> MonitoringSettings:
    assert target.fleet.monitoring is not None
    return target.fleet.monitoring


def fire_window(monitoring: MonitoringSettings, rule_for: str, *, collector: str = "0s") -> float:
    """The longest a fault may take to reach the receiver: a collector run and a scrape to see it, two rule
    evaluations around the ``for:`` window, Alertmanager's group wait, and ``SLACK_S``."""
    return (seconds(collector) + seconds(monitoring.scrape_interval) + 2 * seconds(monitoring.evaluation_interval)
            + seconds(rule_for) + seconds(monitoring.alertmanager.group_wait) + SLACK_S)


def resolve_window(monitoring: MonitoringSettings, *, collector: str = "0s") -> float:
    """A recovery seen, the rule no longer matching, and Alertmanager's next flush of the group."""
    return (seconds(collector) + seconds(monitoring.scrape_interval) + 2 * seconds(monitoring.evaluation_interval)
            + seconds(monitoring.alertmanager.group_interval) + SLACK_S)


def wait_alert(receiver: AlertReceiver, monitoring: MonitoringSettings, receiver_name: str, alertname: str, *,
               status: str, since: float, timeout: float, **labels: str) -> tuple[Notification, float]:
    """The notification to ``receiver_name`` carrying ``alertname`` in ``status``; and how long it took."""
    path = receiver_path(monitoring, receiver_name)
    found = receiver.wait_for(lambda n: n.path == path and n.has(alertname, status, **labels), timeout, since=since)
    return found, found.received - since


def _outer(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def container(name: str) -> str:
    """The outer engine's container standing in for lab host ``name``."""
    return lab_state_settings().container_name(name)


@contextlib.contextmanager
def small_volume(target: FleetTarget, host: str, mountpoint: str, size_mib: int = 64) -> Iterator[str]:
    """A real ext4 filesystem of ``size_mib`` mounted at ``mountpoint`` inside lab host ``host``: a loop device on
    this machine, mounted from here into the host's mount namespace (the host's own device cgroup would refuse
    it). Filling the lab's real volumes would fill this machine's disk."""
    image = Path(f"/var/tmp/drape-monitoring-{container(host)}-fill.img")
    image.unlink(missing_ok=True)
    with image.open("wb") as handle:
        handle.truncate(size_mib * 2**20)
    _outer("mkfs.ext4", "-q", "-F", str(image))
    device = _outer("losetup", "--find", "--show", str(image))
    pid = _outer("docker", "inspect", "-f", "{{.State.Pid}}", container(host))
    node = f"/dev/drape-fill-{Path(device).name}"
    minor = int(device.removeprefix("/dev/loop"))
    inside = ["nsenter", "-t", pid, "-m", "--", "sh", "-c"]
    try:
        _outer(*inside, f"mknod {node} b 7 {minor} && mkdir -p {mountpoint} && mount {node} {mountpoint}")
        yield mountpoint
    finally:
        subprocess.run([*inside, f"umount {mountpoint}; rm -f {node}; rmdir {mountpoint}"], capture_output=True,
                       timeout=60, check=False)
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60, check=False)
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def fed_mdstat(target: FleetTarget, host: str, text: str) -> Iterator[None]:
    """``text`` as the host's /proc/mdstat, for node_exporter's md collector (the lab's /proc view)."""
    path = f"{PROCFS_VIEW}/mdstat"
    on_host(target, host, f"printf %s {shlex.quote(text)} | sudo tee {path}.new >/dev/null && "
                          f"sudo mv {path}.new {path}")
    try:
        yield
    finally:
        on_host(target, host, f"sudo rm -f {path}", check=False)


def wait_until(predicate: object, timeout: float, what: str, step: float = 2.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
